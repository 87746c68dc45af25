import {fileURLToPath} from 'node:url'

import type {FastifyReply, FastifyRequest} from 'fastify'

/** The dashboard's files, shipped in the package beside dist/ (plain HTML, ES modules and CSS: no build step). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../../../web/', import.meta.url))

// The page loads nothing from elsewhere; it talks to keepers only to upload (XHR) and to play or
// download (media, links), at whatever addresses the master names for them.
const CONTENT_SECURITY_POLICY = "default-src 'self'; connect-src 'self' http: https:; media-src http: https:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"

/** Answers with one file of the dashboard (`index.html` for `GET /`), or a catalogue 404. */
export async function sendDashboardFile(request: FastifyRequest, reply: FastifyReply, file: string): Promise<void> {
  // Loaded by the first visit, not at every master's start (with its table of types, ~0.1 CPU-s).
  const {default: send} = await import('send')
  reply.hijack()
  const res = reply.raw
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY)
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.setHeader('Cache-Control', 'no-cache')
  const stream = send(request.raw, `/${file}`, {root: DASHBOARD_DIR, cacheControl: false, index: false, dotfiles: 'deny'})
  stream.on('error', (error: {status?: number}) => {
    const status = error.status === 404 ? 404 : 500
    res.statusCode = status
    res.setHeader('Content-Type', 'application/json; charset=utf-8')
    res.end(JSON.stringify(status === 404 ? {error: 'DFS_ERR_NOT_FOUND', message: `the dashboard has no file ${file}`} : {error: 'DFS_ERR_INTERNAL', message: 'the dashboard file could not be read'}))
  })
  stream.pipe(res)
}
