"""Multi-step recipes built from the library's pieces (e.g. Cadenza: demix -> hearing aid -> remix -> score)."""
