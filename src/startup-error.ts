/** Thrown when the worker cannot start; the message is for the operator. */
export class StartupError extends Error {}

/**
 * Thrown when a SIGTERM or SIGINT came while the worker was starting: start-up stopped where it
 * was and closed what it had opened. Not a failure: the worker exits 0.
 */
export class StartupStopped extends Error {
  constructor() {
    super("start-up stopped by a signal");
    this.name = "StartupStopped";
  }
}
