import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/** The methods a caller may try on a path; one the path does not take answers 405. */
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/**
 * Answers 405 with `Allow` (RFC 9110 15.5.6) to a method a known path does not take, where
 * fastify's router would answer 404 as for a path that does not exist. Call before the routes
 * are declared (it watches them with an onRoute hook) and `close` after: the routes declared in
 * between get their 405 siblings, registered last so every plugin's routes are known by then.
 * The answer comes in onRequest: before any token check, and before a body is read. Several
 * may watch in turn (the worker's console is declared after the API's routes).
 */
/** The 405 answers' handlers: another watcher (the console's, after the API's) leaves them be. */
const refusals = new WeakSet<object>();

export function answerMethodNotAllowed(
  app: FastifyInstance,
  /** The paths watched (all by default): those of routes another watcher already watches are not. */
  watched: (url: string) => boolean = () => true,
): { close(): void } {
  const methodsByPath = new Map<string, Set<string>>();
  let watching = true;
  app.addHook("onRoute", (route) => {
    if (!watching || refusals.has(route.handler) || !watched(route.url)) return;
    const methods = methodsByPath.get(route.url) ?? new Set<string>();
    for (const method of [route.method].flat()) methods.add(method);
    // fastify adds HEAD to a GET route by itself (exposeHeadRoutes).
    if (methods.has("GET") && route.exposeHeadRoute !== false) methods.add("HEAD");
    methodsByPath.set(route.url, methods);
  });
  return {
    close() {
      app.register(async (scope) => {
        watching = false;
        for (const [url, taken] of methodsByPath) {
          const others = METHODS.filter((method) => !taken.has(method));
          if (others.length === 0) continue;
          const allow = METHODS.filter((method) => taken.has(method)).join(", ");
          const refuse = async (request: FastifyRequest, reply: FastifyReply) =>
            reply
              .code(405)
              .header("allow", allow)
              .send({ error: `method ${request.method} not allowed; use ${allow}` });
          refusals.add(refuse);
          scope.route({
            method: others,
            url,
            exposeHeadRoute: false,
            onRequest: refuse,
            handler: refuse,
          });
        }
      });
    },
  };
}
