-- PostgreSQL's 0012 moves its search `tsvector` into a narrow table of its own. SQLite's search
-- already reads its own index (`catalog_search`, FTS5) and nothing changes here; the file keeps
-- both backends' migrations numbered alike.
SELECT 1;
