/// The registry service library (in progress).
