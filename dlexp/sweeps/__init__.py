"""What belongs to a sweep as a whole: finishing a stopped one (resume)."""
