// Run by harness.test.ts in a process of its own, which it then stops with SIGTERM, as the test
// runner does to a file that outlives --test-timeout. Not a test of dfs.

import {appendFileSync} from 'node:fs'
import {test} from 'node:test'

import {TestCluster} from '../helpers/cluster.js'

test('hangs with a cluster running', async () => {
  const cluster = await TestCluster.start({keepers: 1, replicas: 1})
  for (const server of [cluster.master, ...cluster.keepers]) appendFileSync(process.env.HARNESS_PIDS!, `${server.child.pid}\n`)
  appendFileSync(process.env.HARNESS_PIDS!, 'ready\n')
  await new Promise(() => {})
})
