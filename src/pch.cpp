// Owner of the precompiled header (include/semaim/pch.h); no code of its own.
