// The baseline server: the least a Node HTTP server must do to store an upload durably. PUT /NAME
// streams the body to DIR/NAME and fsyncs it before answering 201; no hashing, no temp file, no
// metadata, no master. What dfs adds on top of this is what the bench measures.
//
//   node dist/bench/bare-server.js DIR   →  prints "bare server listening on http://127.0.0.1:PORT"

import {createWriteStream} from 'node:fs'
import {createServer} from 'node:http'
import {join} from 'node:path'
import {pipeline} from 'node:stream/promises'

const dir = process.argv[2]
if (!dir) {
  process.stderr.write('usage: bare-server.js DIR\n')
  process.exit(2)
}

const CHUNK = 1024 * 1024

const server = createServer((request, response) => {
  const name = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname.slice(1))
  if (request.method !== 'PUT' || name.length === 0 || name.includes('/') || name.startsWith('.')) {
    response.writeHead(request.method === 'GET' && name === 'health' ? 200 : 400).end()
    request.resume()
    return
  }

  // flush: fsync before the stream closes, as the keepers do.
  pipeline(request, createWriteStream(join(dir, name), {flush: true, highWaterMark: CHUNK})).then(
    () => response.writeHead(201, {'content-type': 'application/json'}).end('{"ok":true}'),
    (error: Error) => response.writeHead(500).end(error.message),
  )
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  process.stdout.write(`bare server listening on http://127.0.0.1:${port}\n`)
})

const stop = () => server.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
