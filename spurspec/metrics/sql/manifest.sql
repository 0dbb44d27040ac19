-- The dataset manifest, straight from its Parquet file.
CREATE OR REPLACE TEMP TABLE manifest AS
SELECT * FROM read_parquet($path);
