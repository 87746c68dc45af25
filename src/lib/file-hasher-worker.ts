// The worker of FileHasher: hashes its file's prefix as the main thread reports it written, so
// that sha256 runs beside the download instead of on the thread that receives it.
import {createHash} from 'node:crypto'
import {closeSync, openSync} from 'node:fs'
import {parentPort, workerData} from 'node:worker_threads'

import {READ_SIZE, hashInto, type HasherAnswer, type HasherRequest} from './file-hasher.js'

const port = parentPort!
const fd = openSync((workerData as {path: string}).path, 'r')
const hash = createHash('sha256')
const buffer = Buffer.allocUnsafe(READ_SIZE)
let hashed = 0

port.on('message', (request: HasherRequest) => {
  let answer: HasherAnswer | undefined
  try {
    const upTo = 'end' in request ? request.end : request.written
    if (upTo > hashed) {
      hashInto(hash, fd, hashed, upTo, buffer)
      hashed = upTo
    }

    if ('end' in request) answer = {sha256: hash.digest('hex')}
  } catch (error) {
    answer = {error: (error as Error).message}
  }

  if (answer) {
    closeSync(fd)
    port.postMessage(answer)
    port.close()
  }
})
