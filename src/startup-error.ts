/** Thrown when the worker cannot start; the message is for the operator. */
export class StartupError extends Error {}
