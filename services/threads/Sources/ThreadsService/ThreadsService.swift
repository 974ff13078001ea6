/// The threads service library (in progress).
