-- One compare-and-set (see cas in scripts.lib_cas.lua): KEYS are one enrollment's and the figures
-- shard of its journey version, ARGV its 17 and the measurement ones: figures text ("" none),
-- window to open ("" none), epoch of a delivered message to stamp on the window ("" none), split
-- arm to add to the window ("" none).  The counts and the window are written only when the
-- compare-and-set wins, in the same atomic step.  Returns 1 when written, 0 when it lost.
if cas(0, 0) == 0 then return 0 end
if ARGV[18] ~= '' then incr(KEYS[5], ARGV[18]) end
mark_window(KEYS[1], ARGV[3], ARGV[19], ARGV[20], ARGV[21])
return 1
