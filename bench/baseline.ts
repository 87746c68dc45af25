// The baselines every dfs figure is compared with, measured in the same run on the same disk:
// bare HTTP PUTs to bare-server.js, curl (or a bare undici GET) from a keeper, and cp + sync.

import {execFileSync} from 'node:child_process'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, open, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {pipeline} from 'node:stream/promises'

import {Agent, request} from 'undici'

import type {DataFile} from './data.js'
import {BENCH_DIST, cpuSeconds, lastLines, runCommand, spawnTracked, stopProcess, waitForLine, type Tracked} from './processes.js'

const CHUNK = 1024 * 1024
const agent = new Agent({keepAliveTimeout: 30_000, connections: 64, pipelining: 1})

export class BareServer {
  private constructor(
    readonly url: string,
    readonly dir: string,
    readonly proc: Tracked,
  ) {}

  static async start(dir: string): Promise<BareServer> {
    await mkdir(dir, {recursive: true})
    const proc = spawnTracked(process.execPath, [join(BENCH_DIST, 'bare-server.js'), dir])
    const match = await waitForLine(proc, /listening on (http:\/\/\S+)/, 'bare server')
    return new BareServer(match[1]!, dir, proc)
  }

  /** Removes what was uploaded, so that the disk does not fill up between runs. */
  async clear(): Promise<void> {
    await rm(this.dir, {recursive: true, force: true})
    await mkdir(this.dir, {recursive: true})
  }

  async stop(): Promise<void> {
    await stopProcess(this.proc, 2000)
  }
}

/** One bare HTTP PUT of a file (streamed in 1 MiB chunks); resolves once the server fsynced it. */
export async function barePut(server: BareServer, file: DataFile, name = file.name): Promise<void> {
  let response
  try {
    response = await request(`${server.url}/${encodeURIComponent(name)}`, {
      method: 'PUT',
      dispatcher: agent,
      headers: {'content-type': 'application/octet-stream', 'content-length': String(file.size)},
      body: createReadStream(file.path, {highWaterMark: CHUNK}),
    })
  } catch (error) {
    throw new Error(`bare PUT to ${server.url}: ${(error as Error).message}; bare server: ${lastLines(server.proc.stderr())}`, {cause: error})
  }

  const text = await response.body.text()
  if (response.statusCode !== 201) throw new Error(`bare PUT of ${name} answered ${response.statusCode}: ${text}`)
}

/** Times an async action in milliseconds. */
export async function timed(action: () => Promise<unknown>): Promise<number> {
  const started = performance.now()
  await action()
  return performance.now() - started
}

/** Times an action of bare servers, with the CPU seconds it cost them and this process (which sends; it does nothing else meanwhile). */
export async function timedWithCpu(servers: BareServer[], action: () => Promise<unknown>): Promise<[ms: number, cpuS: number]> {
  const cpuOf = () => servers.reduce((sum, server) => sum + (cpuSeconds(server.proc.pid) ?? 0), 0)
  const serversBefore = cpuOf()
  const selfBefore = process.cpuUsage()
  const ms = await timed(action)
  const self = process.cpuUsage(selfBefore)
  return [ms, cpuOf() - serversBefore + (self.user + self.system) / 1e6]
}

/** Runs `work` over `items` with at most `concurrency` under way. */
export async function eachConcurrently<T>(items: T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      await work(items[index]!, index)
    }
  }

  await Promise.all(Array.from({length: Math.min(concurrency, items.length)}, worker))
}

let curlPath: string | undefined | null = null

/** curl, if the machine has it. */
export function curl(): string | undefined {
  if (curlPath === null) {
    try {
      curlPath = execFileSync('sh', ['-c', 'command -v curl'], {encoding: 'utf8'}).trim() || undefined
    } catch {
      curlPath = undefined
    }
  }

  return curlPath
}

/** Downloads a URL to a file and fsyncs it (dfs get fsyncs too): curl when present, else undici. */
export async function bareGet(url: string, output: string): Promise<void> {
  const tool = curl()
  if (tool) {
    await runCommand(tool, ['-sS', '-f', '--no-buffer', '-o', output, url])
    await fsyncPath(output)
    return
  }

  await bareGetUndici(url, output)
}

/** A bare undici GET of a URL into a file, fsynced (the baseline of many small downloads). */
export async function bareGetUndici(url: string, output: string): Promise<void> {
  let response
  try {
    response = await request(url, {dispatcher: agent})
  } catch (error) {
    throw new Error(`bare GET ${url}: ${(error as Error).message}`, {cause: error})
  }

  if (response.statusCode !== 200) {
    await response.body.dump()
    throw new Error(`bare GET ${url} answered ${response.statusCode}`)
  }

  await pipeline(response.body, createWriteStream(output, {flush: true, highWaterMark: CHUNK}))
}

export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r+')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** `cp SOURCE DEST && sync DEST`: the time the disk itself needs to make a durable copy. */
export async function copyAndSync(source: string, destination: string): Promise<number> {
  return timed(() => runCommand('sh', ['-c', 'cp -- "$1" "$2" && sync -- "$2"', 'cp-sync', source, destination]))
}
