// Summarises V8 .cpuprofile files (from `npm run bench -- --cpu-prof DIR`, or node --cpu-prof):
// where the time went by self time, by inclusive time, and by area (GC, idle, node internals, each
// package, each dfs source file). Several files are added up, e.g. all keepers of a run.
//
//   node dist/bench/profile-summary.js DIR_OR_FILE… [--top 25]

import {readdir, readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

const {values, positionals} = parseArgs({options: {top: {type: 'string', default: '25'}}, allowPositionals: true})
const top = Number(values.top)

async function profileFiles(paths: string[]): Promise<string[]> {
  const files: string[] = []
  for (const path of paths) {
    if ((await stat(path)).isDirectory()) {
      for (const entry of await readdir(path)) if (entry.endsWith('.cpuprofile')) files.push(join(path, entry))
    } else {
      files.push(path)
    }
  }

  return files
}

/** "node_modules/fastify/lib/reply.js" → "fastify", "dist/src/roles/keeper/keeper.js" → that path. */
function area(frame: CallFrame): string {
  const {url, functionName} = frame
  if (!url) return functionName.startsWith('(') ? functionName : '(native / builtin)'
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0]
  const modules = url.lastIndexOf('/node_modules/')
  if (modules >= 0) {
    const parts = url.slice(modules + '/node_modules/'.length).split('/')
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!
  }

  const dist = url.indexOf('/dist/')
  return dist >= 0 ? url.slice(dist + 1) : url.replace(/^file:\/\//, '')
}

function label(frame: CallFrame): string {
  const file = frame.url ? frame.url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/') : ''
  return `${frame.functionName || '(anonymous)'} ${file ? `${file}:${frame.lineNumber + 1}` : ''}`.trim()
}

const self = new Map<string, number>()
const inclusive = new Map<string, number>()
const areas = new Map<string, number>()
let total = 0
let wall = 0
const files = await profileFiles(positionals)
if (files.length === 0) {
  console.error('usage: profile-summary.js DIR_OR_FILE… [--top N]  (no .cpuprofile found)')
  process.exit(2)
}

for (const file of files) {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile
  wall += profile.endTime - profile.startTime
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  for (let index = 0; index < profile.samples.length; index++) {
    const micros = profile.timeDeltas[index + 1] ?? 0
    const node = byId.get(profile.samples[index]!)!
    total += micros
    const key = label(node.callFrame)
    self.set(key, (self.get(key) ?? 0) + micros)
    const where = area(node.callFrame)
    areas.set(where, (areas.get(where) ?? 0) + micros)
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame
      const name = label(frame)
      if (seen.has(name) || name === '(root)') continue
      seen.add(name)
      inclusive.set(name, (inclusive.get(name) ?? 0) + micros)
    }
  }
}

const ms = (micros: number) => `${(micros / 1000).toFixed(0).padStart(7)} ms ${((100 * micros) / total).toFixed(1).padStart(5)}%`
const print = (title: string, map: Map<string, number>, skip: (key: string) => boolean = () => false) => {
  console.log(`\n${title}`)
  for (const [key, micros] of [...map].filter(([key]) => !skip(key)).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(micros)}  ${key}`)
}

console.log(`${files.length} profile(s), ${(wall / 1000).toFixed(0)} ms of wall time in all, ${(total / 1000).toFixed(0)} ms sampled`)
print('by area (self time):', areas)
print('by function, self time:', self)
print('by function, inclusive time (idle, program and GC left out):', inclusive, (key) => key.startsWith('(idle)') || key.startsWith('(program)') || key.startsWith('(garbage'))
