-- The scheduler asks for the earliest live lease after every round; without an index that is
-- a scan of every lease ever taken. Leases whose timer is gone or re-armed are purged by the
-- housekeeping task (see `Scheduler::purge_stale_leases`), so the table stays as small as the
-- set of timers in flight.
CREATE INDEX timer_leases_until ON timer_leases (leased_until);
