-- 006: the sender's department (from the directory) as a column, so that an admin limited to
-- departments searches only theirs; NULL in records from before (the detail JSON has it).
ALTER TABLE records ADD COLUMN department text;
CREATE INDEX records_department ON records (department, time);
