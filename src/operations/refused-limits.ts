/** How many refused events a listing shows unless told (`followups refused`, the console). */
export const REFUSED_DEFAULT_LIMIT = 100;
/** The most a listing shows: the failed set keeps refused events 30 days, bounded by count. */
export const REFUSED_MAX_LIMIT = 10_000;
