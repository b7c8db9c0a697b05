-- One compare-and-set (see cas in scripts.lib_cas.lua): KEYS and ARGV are one enrollment's.
return cas(0, 0)
