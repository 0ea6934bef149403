-- 002: the expiry sweep reads pending requests by expiry.
CREATE INDEX approvals_pending_expiry ON approvals (expires) WHERE state = 'pending';
