// Keepers a test starts itself, beside those of a TestCluster, when one needs flags of its own (a
// scrub rate, a fixed port behind a proxy); each is killed after the test that started it.

import {once} from 'node:events'
import {createServer} from 'node:net'
import type {TestContext} from 'node:test'

import {FAST, ServerProcess, type TestCluster} from './cluster.js'

/** A keeper process on `dataDir` registered with the cluster's master, with its key and `args` added to its command line. */
export async function startKeeper(t: TestContext, cluster: TestCluster, dataDir: string, args: string[] = []): Promise<ServerProcess> {
  const defaults = args.includes('--heartbeat-interval') ? [] : ['--heartbeat-interval', FAST.heartbeatInterval]
  const keeper = await ServerProcess.start(['keeper', '--master', cluster.masterUrl, '--data', dataDir, '--secret-file', cluster.secretFile, ...defaults, ...args])
  t.after(() => keeper.stop('SIGKILL'))
  cluster.noteKeeperDataDir(keeper.id, dataDir)
  return keeper
}

/** A loopback port that was free a moment ago, for a process that must know its port before it starts. */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (!address || typeof address === 'string') throw new Error('no port')
  return address.port
}
