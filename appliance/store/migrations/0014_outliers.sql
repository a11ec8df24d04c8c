-- 0014: outlier detection on live inputs. A model version may carry an outlier detector
-- (an ONNX file beside the model, content-addressed like it; NULL for older versions and
-- uploaded models); each logged prediction may carry the detector's verdict and score
-- (NULL when its version has no detector, and for every row logged before this).
ALTER TABLE model_versions ADD COLUMN outlier_sha256 VARCHAR;
ALTER TABLE predictions ADD COLUMN outlier BOOLEAN;
ALTER TABLE predictions ADD COLUMN outlier_score DOUBLE PRECISION;
