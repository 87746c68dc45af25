import type {FastifyInstance, FastifyReply, FastifyRequest, FastifySchema} from 'fastify'

import type {AnswerOf, BodyOf, HeadersOf, ParamsOf, QueryOf, Route} from './protocol.js'

type Or<T, D> = [T] extends [undefined] ? D : T

/** A request on `R`, typed by the route's schemas (which fastify has checked it against). */
export type RouteRequest<R extends Route> = FastifyRequest<{
  Params: Or<ParamsOf<R>, unknown>
  Querystring: Or<QueryOf<R>, unknown>
  Headers: Or<HeadersOf<R>, unknown>
  Body: Or<BodyOf<R>, unknown>
}>

/**
 * Serves a protocol route: fastify validates the path parameters, query string, headers and body
 * with the route's schemas (compiled at its first request: lazy-validators.ts), and the handler's answer is typed by it.
 * Routes are served only this way, so a server answers exactly the routes protocol.ts declares.
 */
export function serveRoute<const R extends Route>(
  app: FastifyInstance,
  route: R,
  handler: (request: RouteRequest<R>, reply: FastifyReply) => Promise<AnswerOf<R>>,
): void {
  const schema: FastifySchema = {}
  if (route.params) schema.params = route.params
  if (route.querystring) schema.querystring = route.querystring
  if (route.headers) schema.headers = route.headers
  if (route.body) schema.body = route.body
  const status = route.status
  app.route({
    method: route.method,
    url: route.url,
    schema,
    handler: status
      ? async (request, reply) => {
          reply.code(status)
          return handler(request as RouteRequest<R>, reply)
        }
      : (request, reply) => handler(request as RouteRequest<R>, reply),
  })
}
