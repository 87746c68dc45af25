import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {request} from 'undici'

import {FIXTURES, SAMPLES, TestCluster, randomFile} from './helpers/cluster.js'

describe('keepers serve files like a web server, so browsers and curl can stream mp4', () => {
  let cluster: TestCluster
  let url: string
  const original = readFile(join(FIXTURES, 'sample_3.mp4'))

  before(async () => {
    cluster = await TestCluster.start({keepers: 1, replicas: 1})
    assert.equal((await cluster.dfs(['put', join(FIXTURES, 'sample_3.mp4')])).code, 0)
    // What a user hands a browser: the URL of dfs url, whose read grant is its only credential.
    const printed = await cluster.dfs(['url', 'sample_3.mp4'])
    assert.equal(printed.code, 0, printed.stderr)
    url = printed.stdout.trim()
  })
  after(() => cluster.stop())

  test('a whole GET has Content-Type video/mp4, the length, a strong ETag and Accept-Ranges', async () => {
    const response = await fetch(url)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'video/mp4')
    assert.equal(response.headers.get('content-length'), String(SAMPLES['sample_3.mp4'].size))
    assert.equal(response.headers.get('etag'), `"${SAMPLES['sample_3.mp4'].sha256}"`)
    assert.equal(response.headers.get('accept-ranges'), 'bytes')
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), await original)
  })

  test('a Range request gets 206 with exactly those bytes', async () => {
    const response = await fetch(url, {headers: {range: 'bytes=1000-1999'}})
    assert.equal(response.status, 206)
    assert.equal(response.headers.get('content-range'), `bytes 1000-1999/${SAMPLES['sample_3.mp4'].size}`)
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), (await original).subarray(1000, 2000))
    const tail = await fetch(url, {headers: {range: 'bytes=-100'}})
    assert.equal(tail.status, 206)
    assert.deepEqual(Buffer.from(await tail.arrayBuffer()), (await original).subarray(-100))
  })

  test('HEAD gives the headers without a body; If-None-Match gives 304', async () => {
    const head = await fetch(url, {method: 'HEAD'})
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), String(SAMPLES['sample_3.mp4'].size))
    // undici's request, not fetch: fetch adds Cache-Control: no-cache to conditional requests.
    const cached = await request(url, {headers: {'if-none-match': `"${SAMPLES['sample_3.mp4'].sha256}"`}})
    await cached.body.dump()
    assert.equal(cached.statusCode, 304)
  })

  test('an unsatisfiable range gets 416 with a JSON error', async () => {
    const response = await fetch(url, {headers: {range: `bytes=${SAMPLES['sample_3.mp4'].size + 10}-`}})
    assert.equal(response.status, 416)
    assert.equal(((await response.json()) as {error: string}).error, 'DFS_ERR_RANGE_NOT_SATISFIABLE')
  })

  test('a small file read whole from one buffer answers as the streamed path does', async () => {
    const source = join(cluster.dir, 'small.mp4')
    const sha256 = await randomFile(source, 100 * 1024)
    assert.equal((await cluster.dfs(['put', source])).code, 0)
    const printed = await cluster.dfs(['url', 'small.mp4'])
    assert.equal(printed.code, 0, printed.stderr)
    const smallUrl = printed.stdout.trim()
    const bytes = await readFile(source)
    // A condition sends the request down send's stream path; If-Range with the file's own ETag
    // changes nothing else in the answer.
    const streamed = {'if-range': `"${sha256}"`}
    const answer = async (headers: Record<string, string>) => {
      const response = await request(smallUrl, {headers})
      const body = Buffer.from(await response.body.arrayBuffer())
      const {date: _date, ...rest} = response.headers
      return {status: response.statusCode, headers: rest, body}
    }

    const ranges: Array<Record<string, string>> = [{}, {range: `bytes=0-${bytes.length - 1}`}]
    for (const range of ranges) {
      const whole = await answer(range)
      assert.equal(whole.status, 'range' in range ? 206 : 200)
      assert.deepEqual(whole.body, bytes)
      assert.deepEqual(whole, await answer({...range, ...streamed}), JSON.stringify(range))
    }

    // Any other range, and any condition, is send's to answer.
    const part = await answer({range: 'bytes=10-99'})
    assert.equal(part.status, 206)
    assert.equal(part.headers['content-range'], `bytes 10-99/${bytes.length}`)
    assert.deepEqual(part.body, bytes.subarray(10, 100))
    assert.equal((await answer({'if-none-match': `"${sha256}"`})).status, 304)
  })

  test('an unknown name gets 404 with a JSON error', async () => {
    const keeper = cluster.keepers[0]!
    const grant = await cluster.grant('read', keeper.id, {name: 'other.mp4', fileId: 'someFileId'})
    const response = await fetch(`${keeper.url}/files/other.mp4?grant=${encodeURIComponent(grant)}`)
    assert.equal(response.status, 404)
    assert.equal(((await response.json()) as {error: string}).error, 'DFS_ERR_NOT_FOUND')
  })
})
