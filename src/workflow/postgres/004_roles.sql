-- 004: recipient roles (to, cc, bcc) for search; NULL in records from before. The role is also
-- in each record's detail JSON.
ALTER TABLE record_recipients ADD COLUMN role text;
