// Run by harness.test.ts in a test process of its own: a test that fails with a cluster of its
// own, and a suite that never stops its shared cluster. Not a test of dfs.

import assert from 'node:assert/strict'
import {appendFileSync} from 'node:fs'
import {before, describe, test} from 'node:test'

import {TestCluster, clusterPerTest} from '../helpers/cluster.js'

/** Tells the parent test which processes to look for once this one has exited. */
function recordPids(cluster: TestCluster): void {
  for (const server of [cluster.master, ...cluster.keepers]) appendFileSync(process.env.HARNESS_PIDS!, `${server.child.pid}\n`)
}

describe('a cluster per test', () => {
  const clusters = clusterPerTest()
  test('fails on purpose with a cluster running', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    recordPids(cluster)
    assert.fail('failing on purpose')
  })
})

describe('a shared cluster that is never stopped', () => {
  let cluster: TestCluster
  before(async () => {
    cluster = await TestCluster.start({keepers: 1, replicas: 1})
    recordPids(cluster)
  })
  test('fails on purpose too', () => {
    assert.equal(cluster.keepers.length, 2, 'failing on purpose')
  })
})
