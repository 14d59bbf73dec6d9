-- Each write of a progress row counts up its version. The progress writer reads rows without
-- locking them, merges in Python and writes back only where the version is still the one it
-- read: two writers (two nodes) never overwrite each other, and no lock is held between the
-- read and the write.
ALTER TABLE progress ADD COLUMN version bigint NOT NULL DEFAULT 0;
