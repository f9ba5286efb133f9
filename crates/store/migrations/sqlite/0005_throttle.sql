-- Why a sliver's egress is throttled (daily byte cap spent), as its node last reported.
ALTER TABLE slivers ADD COLUMN throttled TEXT;
