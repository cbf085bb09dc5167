import type { Params, Result, Router } from "hono/router";

const NO_PARAMS: Params = Object.freeze({}) as Params;
const NO_MATCH: [never, Params][] = [];

/**
 * Hono's router for an app whose every route is one method on one fixed path (the plugin
 * protocol): a map lookup, nothing built on the first request, and exact, so
 * `/Plugin.Activate/` is another (unknown) path, as with Hono's default router. Hono's
 * linear and pattern routers, also without a build, take a trailing slash for the path.
 * Middleware (`use`, `all`) and patterns are refused when they are added, not misrouted.
 */
export class ExactRouter<T> implements Router<T> {
  readonly name = "ExactRouter";
  private readonly routes = new Map<string, [T, Params][]>();

  add(method: string, path: string, handler: T): void {
    if (method === "ALL" || /[:*{}]/.test(path)) throw new Error(`ExactRouter takes one method on a fixed path, not ${method} ${path}`);
    const key = `${method} ${path}`;
    const handlers = this.routes.get(key);
    if (handlers) handlers.push([handler, NO_PARAMS]);
    else this.routes.set(key, [[handler, NO_PARAMS]]);
  }

  match(method: string, path: string): Result<T> {
    return [this.routes.get(`${method} ${path}`) ?? NO_MATCH];
  }
}
