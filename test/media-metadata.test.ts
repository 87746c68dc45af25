import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import Database from 'better-sqlite3'

import type {FileInfo, FileSummary, MediaInfo} from '../src/lib/protocol.js'
import {MasterTable} from '../src/roles/master/table.js'
import {FIXTURES, ServerProcess, TestCluster, clusterPerTest, tempDir, waitFor} from './helpers/cluster.js'
import {HttpProxy} from './helpers/http-proxy.js'
import {SAMPLE_MEDIA, withMoovAtEnd} from './helpers/mp4-files.js'

const SAMPLE_1 = SAMPLE_MEDIA['sample_1.mp4']

describe('dfs stat shows what the keeper that took an upload read of an mp4', () => {
  let cluster: TestCluster
  let work: string
  // What each stored file is, as dfs stat --json must say.
  const expected = new Map<string, MediaInfo | null>()

  before(async () => {
    work = await tempDir()
    cluster = await TestCluster.start({keepers: 3, replicas: 3})
    const sample1 = await readFile(join(FIXTURES, 'sample_1.mp4'))
    const made = {
      'moov-at-end.mp4': withMoovAtEnd(sample1),
      'not-a-video.mp4': randomBytes(200_000),
      'truncated.mp4': sample1.subarray(0, sample1.length >> 1),
    }
    const paths = Object.keys(SAMPLE_MEDIA).map((name) => join(FIXTURES, name))
    for (const [name, bytes] of Object.entries(made)) {
      await writeFile(join(work, name), bytes)
      paths.push(join(work, name))
    }

    for (const [name, media] of Object.entries(SAMPLE_MEDIA)) expected.set(name, media)
    expected.set('moov-at-end.mp4', {...SAMPLE_1, fastStart: false})
    expected.set('not-a-video.mp4', null)
    expected.set('truncated.mp4', null)
    // A file that is not a valid mp4 is stored as any other.
    const put = await cluster.dfs(['put', ...paths])
    assert.equal(put.code, 0, put.stderr)
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test('stat --json: duration, resolution, codecs, bitrate and moov position of each sample; null for a file that is not an mp4 or is cut short', async () => {
    for (const [name, media] of expected) {
      const file = await cluster.dfsJson<FileInfo>(['stat', name])
      assert.deepEqual(file.media, media, name)
    }
  })

  test('ls --json and the master\'s GET /files and /files/:name carry the same media object', async () => {
    const listed = new Map((await cluster.dfsJson<FileSummary[]>(['ls'])).map((file) => [file.name, file.media]))
    assert.deepEqual(listed, expected)
    const {body} = await cluster.masterJson<{files: FileSummary[]}>('/files')
    assert.deepEqual(new Map(body.files.map((file) => [file.name, file.media])), expected)
    assert.deepEqual((await cluster.stat('sample_3.mp4') as unknown as FileInfo).media, SAMPLE_MEDIA['sample_3.mp4'])
  })

  test('stat prints duration, resolution, codecs and bitrate, and flags a moov at the end', async () => {
    const lines = async (name: string) => {
      const result = await cluster.dfs(['stat', name])
      assert.equal(result.code, 0, result.stderr)
      return result.stdout.split('\n')
    }

    const sample1 = await lines('sample_1.mp4')
    for (const line of ['media:    mp4, 30.53 s, 411 kbit/s', 'video:    avc1.42c01e 480x270', 'audio:    mp4a.40.2']) assert.ok(sample1.includes(line), `${line}\n${sample1.join('\n')}`)
    assert.ok(!sample1.some((line) => line.includes('moov at end')), sample1.join('\n'))
    const sample2 = await lines('sample_2.mp4')
    assert.ok(sample2.includes('video:    avc1.64001f 898x506'), sample2.join('\n'))
    assert.ok(!sample2.some((line) => line.startsWith('audio:')), sample2.join('\n'))
    const moved = await lines('moov-at-end.mp4')
    assert.ok(moved.some((line) => line.startsWith('moov at end: not fast-start')), moved.join('\n'))
    const other = await lines('not-a-video.mp4')
    assert.ok(!other.some((line) => /^(media|video|audio):/.test(line)), other.join('\n'))
  })
})

describe('media metadata belongs to the file, and is a keeper\'s claim held to bounds', () => {
  const clusters = clusterPerTest()

  test('it outlives the keeper that read it (the file repaired from the others) and a restart of the master', async () => {
    const cluster = await clusters.start({keepers: 4, replicas: 3})
    const put = await cluster.dfsJson<Array<{keeper: string}>>(['put', join(FIXTURES, 'sample_1.mp4'), '--wait', 'all'])
    const reader = cluster.keeperById(put[0]!.keeper)
    await reader.stop('SIGKILL')
    await waitFor('3 alive replicas of sample_1.mp4 without the keeper that took the upload', async () => {
      const alive = (await cluster.stat('sample_1.mp4')).replicas.filter((replica) => replica.alive && replica.keeper !== reader.id)
      return alive.length === 3
    })
    assert.deepEqual((await cluster.dfsJson<FileInfo>(['stat', 'sample_1.mp4'])).media, SAMPLE_1)
    await cluster.master.stop('SIGKILL')
    await cluster.startMaster()
    assert.deepEqual((await cluster.dfsJson<FileInfo>(['stat', 'sample_1.mp4'])).media, SAMPLE_1)
  })

  test('a claim beyond the bounds is refused with the commit, extra fields are dropped', async () => {
    const cluster = await clusters.start({keepers: 0, replicas: 1})
    // A keeper that lies about what it read: its commits pass through here, rewritten.
    let lie: (media: Record<string, unknown>) => Record<string, unknown> = (media) => media
    const proxy = await HttpProxy.start(cluster.masterUrl, {
      beforeForward(request) {
        if (request.method !== 'POST' || request.path !== '/uploads/commits') return
        const body = JSON.parse(request.body) as {commits: Array<{media?: Record<string, unknown>}>}
        for (const commit of body.commits) assert.ok(commit.media, `the keeper sent no media: ${request.body}`)
        request.body = JSON.stringify({...body, commits: body.commits.map((commit) => ({...commit, media: lie(commit.media!)}))})
      },
    })
    try {
      const dataDir = join(clusters.work, 'lying-keeper')
      const keeper = await ServerProcess.start(['keeper', '--master', proxy.url, '--data', dataDir, '--secret-file', cluster.secretFile, '--heartbeat-interval', '150ms'])
      try {
        const bad: Array<[string, Record<string, unknown>]> = [
          ['width', {width: 100_000}],
          ['videoCodec', {videoCodec: '<img src=x onerror=alert(1)>'}],
          ['fastStart', {fastStart: 'yes'}],
        ]
        for (const [field, change] of bad) {
          lie = (media) => ({...media, ...change})
          const put = await cluster.dfs(['put', join(FIXTURES, 'sample_1.mp4')])
          assert.notEqual(put.code, 0, `a claim of ${JSON.stringify(change)} was stored`)
          assert.match(put.stderr, new RegExp(`media/${field}`), put.stderr)
          assert.equal((await cluster.masterJson(`/files/sample_1.mp4`)).status, 404)
        }

        // The refused uploads left nothing on the keeper's disk.
        assert.deepEqual(await readdir(join(dataDir, 'blobs')), [])
        lie = (media) => ({...media, poster: 'http://elsewhere/x.jpg'})
        const put = await cluster.dfs(['put', join(FIXTURES, 'sample_1.mp4')])
        assert.equal(put.code, 0, put.stderr)
        assert.deepEqual((await cluster.dfsJson<FileInfo>(['stat', 'sample_1.mp4'])).media, SAMPLE_1)
      } finally {
        await keeper.stop('SIGKILL')
      }
    } finally {
      await proxy.close()
    }
  })
})

describe('a master table made before media was kept', () => {
  test('gets the media column, keeps its files (with no media), and keeps media put in from then on', async () => {
    const dir = await tempDir()
    try {
      const old = new Database(join(dir, 'master.sqlite3'))
      old.exec(`
        CREATE TABLE files (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at INTEGER NOT NULL);
        INSERT INTO files VALUES ('f1', 'old.mp4', 10, '${'a'.repeat(64)}', 3);
      `)
      old.close()
      const table = new MasterTable(dir)
      assert.equal(table.fileByName('old.mp4')?.media, null)
      table.insertFile({fileId: 'f2', name: 'new.mp4', size: 1_570_024, sha256: 'b'.repeat(64), createdAt: 4, media: SAMPLE_1}, [])
      table.close()
      const again = new MasterTable(dir)
      assert.deepEqual(again.files().map((file) => [file.name, file.media]), [['new.mp4', SAMPLE_1], ['old.mp4', null]])
      again.close()
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})
