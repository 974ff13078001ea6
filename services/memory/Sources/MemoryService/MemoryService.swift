/// The memory service library (in progress).
