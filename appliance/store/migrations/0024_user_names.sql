-- 0024: one user per name by a constraint, not by the single writer. Two hosts starting
-- at once on a fresh PostgreSQL database both found no users and both created `admin`
-- from APPLIANCE_ADMIN_PASSWORD; now the second insert fails and that host finds the
-- first one's user. The embedded store (one writer) never held two users of one name.
CREATE UNIQUE INDEX users_username ON users (username);
