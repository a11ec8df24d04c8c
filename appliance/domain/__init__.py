"""Pure domain: dataclasses, enums and maths. No DB, HTTP or UI imports."""
