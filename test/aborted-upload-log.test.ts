import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {request} from 'node:http'
import {after, before, describe, test} from 'node:test'

import {GRANT_HEADER} from '../src/lib/grants.js'
import {TestCluster, bearer, json, waitFor} from './helpers/cluster.js'
import {logMessages} from './helpers/server-logs.js'

const MiB = 1024 * 1024

describe('the keeper and a client that gives up an upload', () => {
  let cluster: TestCluster
  before(async () => {
    cluster = await TestCluster.start({keepers: 1, replicas: 1})
  })
  after(async () => {
    await cluster.stop()
  })

  test('a client that aborts an upload midway makes the keeper log one warn line naming it, with no stack', async () => {
    const name = 'given-up.bin'
    const size = 8 * MiB
    const ticket = await json<{uploadId: string; keeper: {url: string}; grant?: string}>(`${cluster.masterUrl}/uploads`, {
      method: 'POST',
      headers: {'content-type': 'application/json', ...bearer(cluster.token)},
      body: JSON.stringify({name, size, sha256: '0'.repeat(64)}),
    })
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
    const keeper = cluster.keepers[0]!
    const before = keeper.logs.length

    const upload = request(`${ticket.body.keeper.url}/files/${name}?upload=${ticket.body.uploadId}`, {
      method: 'PUT',
      headers: {'x-dfs-sha256': '0'.repeat(64), 'x-dfs-size': String(size), 'content-type': 'application/octet-stream', ...(ticket.body.grant ? {[GRANT_HEADER]: ticket.body.grant} : {})},
    })
    upload.on('error', () => {})
    upload.write(randomBytes(MiB))
    // Cut once the keeper has the body's start, as a client killed midway (Ctrl-C, a dropped link) cuts it.
    await waitFor('the keeper to count the upload in flight', async () => /dfs_keeper_active_transfers 1\b/.test(await (await fetch(`${keeper.url}/metrics`, {headers: bearer(cluster.token)})).text()))
    upload.destroy()

    const lines = () => keeper.logs.slice(before)
    const about = () => logMessages(keeper).slice(before).filter((message) => message.includes(name))
    await waitFor('the keeper to log the aborted upload', () => about().length > 0)
    // The keeper settles the upload (removes its temp file) before it is done with it; whatever else it logs comes by then.
    await waitFor('the keeper to end the transfer', async () => /dfs_keeper_active_transfers 0\b/.test(await (await fetch(`${keeper.url}/metrics`, {headers: bearer(cluster.token)})).text()))
    assert.equal(about().length, 1, lines().join('\n'))
    const entry = JSON.parse(lines().find((line) => line.includes(name))!) as {level: number; msg: string}
    assert.equal(entry.level, 40, `a warn line: ${lines().join('\n')}`)
    assert.match(entry.msg, /abort/)
    assert.ok(!lines().some((line) => /"stack"|\n\s+at |^\s+at /.test(line)), `no stack trace:\n${lines().join('\n')}`)
  })
})
