import assert from 'node:assert/strict'
import {once} from 'node:events'
import {readdir, rm} from 'node:fs/promises'
import {createServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {SOME_FAILED_EXIT} from '../src/lib/base-command.js'
import {FIXTURES, SAMPLES, TestCluster, dfs, sha256File, tempDir, type RunResult} from './helpers/cluster.js'

/** A failure as one line on stderr: no stack, no oclif help text, nothing on stdout. */
function assertOneLine(result: RunResult, exit: number, pattern: RegExp): void {
  assert.equal(result.code, exit, `exit ${result.code}, stderr:\n${result.stderr}`)
  assert.equal(result.stdout, '')
  const lines = result.stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `one line, got:\n${result.stderr}`)
  assert.match(lines[0]!, pattern)
  assert.doesNotMatch(result.stderr, /See more help|USAGE|\n\s+at /)
}

/** With --json, a failure of the whole command is one JSON error object on stdout. */
function assertJsonError(result: RunResult, exit: number, code: string, pattern: RegExp): void {
  assert.equal(result.code, exit, `exit ${result.code}, stderr:\n${result.stderr}`)
  const body = JSON.parse(result.stdout) as {error: string; message: string}
  assert.deepEqual(Object.keys(body), ['error', 'message'])
  assert.equal(body.error, code)
  assert.match(body.message, pattern)
  assert.doesNotMatch(body.message, /\n/)
}

type Entry = {name?: string; path?: string; sha256?: string; error?: string; message?: string}

describe('one output contract for the client commands', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 2, replicas: 2})
    work = await tempDir()
    assert.equal((await cluster.dfs(['put', join(FIXTURES, 'sample_2.mp4')])).code, 0)
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test('get of a stored and a missing name writes and reports the good one and exits with the partial-failure code', async () => {
    const out = join(work, 'partial-human')
    const human = await cluster.dfs(['get', 'sample_2.mp4', 'missing.mp4', '-o', `${out}/`])
    assert.equal(human.code, SOME_FAILED_EXIT, human.stderr)
    assert.match(human.stdout, /^got sample_2\.mp4 .* into .*sample_2\.mp4/)
    assert.match(human.stderr, /^failed missing\.mp4: no file named "missing\.mp4"$/m)
    assert.match(human.stderr, /^Error: 1 of 2 downloads failed$/m)
    assert.equal(await sha256File(join(out, 'sample_2.mp4')), SAMPLES['sample_2.mp4'].sha256)

    const jsonOut = join(work, 'partial-json')
    const json = await cluster.dfs(['get', 'sample_2.mp4', 'missing.mp4', '-o', `${jsonOut}/`, '--json'])
    assert.equal(json.code, SOME_FAILED_EXIT, json.stderr)
    assert.equal(json.stderr, '')
    const [got, missing] = JSON.parse(json.stdout) as Entry[]
    assert.equal(got!.name, 'sample_2.mp4')
    assert.equal(got!.sha256, SAMPLES['sample_2.mp4'].sha256)
    assert.deepEqual(missing, {name: 'missing.mp4', error: 'DFS_ERR_NOT_FOUND', message: 'no file named "missing.mp4"'})
    assert.deepEqual(await readdir(jsonOut), ['sample_2.mp4'])
  })

  test('one name has the shape of many: an array of one entry, and its own exit code when it fails', async () => {
    const out = join(work, 'one.mp4')
    const got = await cluster.dfs(['get', 'sample_2.mp4', '-o', out, '--json'])
    assert.equal(got.code, 0, got.stderr)
    const entries = JSON.parse(got.stdout) as Entry[]
    assert.equal(entries.length, 1)
    assert.equal(entries[0]!.sha256, SAMPLES['sample_2.mp4'].sha256)

    for (const command of ['get', 'rm']) {
      const failed = await cluster.dfs([command, 'missing.mp4', '--json'])
      assert.equal(failed.code, 3, failed.stderr)
      assert.deepEqual(JSON.parse(failed.stdout), [{name: 'missing.mp4', error: 'DFS_ERR_NOT_FOUND', message: 'no file named "missing.mp4"'}])
    }

    const put = await cluster.dfs(['put', join(work, 'absent.mp4'), '--json'])
    assert.equal(put.code, 2, put.stderr)
    assert.deepEqual(
      (JSON.parse(put.stdout) as Entry[]).map((entry) => [entry.path, entry.error]),
      [[join(work, 'absent.mp4'), 'DFS_ERR_LOCAL_FILE']],
    )
  })

  test('put of a good and a missing file stores the good one and reports both', async () => {
    const missing = join(work, 'nope.mp4')
    const result = await cluster.dfs(['put', join(FIXTURES, 'sample_1.mp4'), missing, '--json'])
    assert.equal(result.code, SOME_FAILED_EXIT, result.stderr)
    const [stored, failed] = JSON.parse(result.stdout) as Entry[]
    assert.equal(stored!.name, 'sample_1.mp4')
    assert.equal(stored!.sha256, SAMPLES['sample_1.mp4'].sha256)
    assert.equal(failed!.path, missing)
    assert.equal(failed!.error, 'DFS_ERR_LOCAL_FILE')

    const removed = await cluster.dfs(['rm', 'sample_1.mp4', '--json'])
    assert.equal(removed.code, 0, removed.stderr)
    assert.equal((JSON.parse(removed.stdout) as Entry[])[0]!.name, 'sample_1.mp4')
  })

  const flagErrors: Array<[string[], RegExp]> = [
    [['get', 'x', '--range-size', 'abc'], /^Error: --range-size: "abc" is not a size: .* \(see dfs get --help\)$/],
    [['put', 'x', '--wait-timeout', 'abc'], /^Error: --wait-timeout: "abc" is not a duration: .* \(see dfs put --help\)$/],
    [['get', 'x', '--bogus'], /^Error: Nonexistent flag: --bogus \(see dfs get --help\)$/],
    [['get'], /^Error: Missing 1 required arg: name names of stored files \(see dfs get --help\)$/],
    [['put', 'x', '--concurrency', '0'], /^Error: .*concurrency.* \(see dfs put --help\)$/],
    [['stat', 'a.mp4', 'b.mp4'], /^Error: Unexpected argument: b\.mp4 \(see dfs stat --help\)$/],
    [['status', 'now'], /^Error: dfs status takes no argument "now" \(see dfs status --help\)$/],
    [['frobnicate'], /^Error: "frobnicate" is not a dfs command \(see dfs --help\)$/],
    [['get', 'x', '--range-size', '1'], /^Error: --range-size must be at least 64KiB, not 1 bytes$/],
    [['cluster', 'up', '--keepers', '2', '--replicas', '5'], /^Error: --replicas 5 is more than the 2 keepers can hold/],
  ]
  for (const [args, pattern] of flagErrors) {
    test(`dfs ${args.join(' ')}: one line, exit 2, and a JSON error with --json`, async () => {
      assertOneLine(await dfs(args), 2, pattern)
      // A server command has no --json.
      if (args[0] === 'cluster') return
      const json = await dfs([...args, '--json'])
      if (args[0] === 'frobnicate' || args[0] === 'status' || args[0] === 'ls') {
        // oclif reads these before any command; --json is seen all the same.
        assertJsonError(json, 2, 'DFS_ERR_BAD_REQUEST', /dfs/)
      } else assertJsonError(json, 2, 'DFS_ERR_BAD_REQUEST', /\(see dfs \w+ --help\)$|at least|more than/)
    })
  }

  test('put --wait above the master\'s target fails at once, the file stored', async () => {
    const result = await cluster.dfs(['put', join(FIXTURES, 'sample_3.mp4'), '--wait', '5'])
    assert.equal(result.code, 2, result.stderr)
    assert.equal(result.stderr, 'Error: "sample_3.mp4" is stored, but --wait 5 is above the master\'s target of 2 replicas, which it never copies beyond\n')
    assert.equal((await cluster.stat('sample_3.mp4')).sha256, SAMPLES['sample_3.mp4'].sha256)
  })

  test('a client command that reaches a keeper, or no dfs node, says the URL is not a dfs master', async () => {
    const keeperUrl = cluster.keepers[0]!.url
    for (const args of [['ls'], ['stat', 'sample_2.mp4'], ['status']]) {
      assertOneLine(await dfs([...args, '--master', keeperUrl]), 6, new RegExp(`^Error: ${keeperUrl.replaceAll('.', '\\.')} is not a dfs master: it is a dfs keeper$`))
    }

    assertJsonError(await dfs(['ls', '--master', keeperUrl, '--json']), 6, 'DFS_ERR_BAD_RESPONSE', /is not a dfs master: it is a dfs keeper/)

    // Some other web server, answering JSON that is not the master's.
    const stranger = createServer((_request, response) => response.writeHead(200, {'content-type': 'application/json'}).end('{"hello":"world"}'))
    stranger.listen(0, '127.0.0.1')
    await once(stranger, 'listening')
    try {
      const url = `http://127.0.0.1:${(stranger.address() as AddressInfo).port}`
      assertOneLine(await dfs(['ls', '--master', url]), 6, new RegExp(`^Error: ${url.replaceAll('.', '\\.')} is not a dfs master \\(its answer to GET /files is not one`))
    } finally {
      stranger.close()
    }

    assertJsonError(await dfs(['ls', '--master', 'http://127.0.0.1:9', '--json']), 6, 'DFS_ERR_MASTER_UNREACHABLE', /cannot reach the master at http:\/\/127\.0\.0\.1:9/)
  })
})
