import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import {join, relative} from 'node:path'
import {test} from 'node:test'

import {REPO} from './helpers/cluster.js'

// Every dfs process loads the protocol's schemas; Node 20 loads TypeBox's 219 ES module files in
// ~0.25 CPU-s, the one bundled file in ~0.02 (docs/performance.md, "Command start-up"). An import of
// the package itself anywhere in src/ would bring the 219 files back into every process.

async function sourcesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {withFileTypes: true, recursive: true})
  return entries.filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')).map((entry) => join(entry.parentPath, entry.name))
}

test('src/ imports TypeBox only as #typebox, the bundled file', async () => {
  const offenders: string[] = []
  let viaBundle = 0
  for (const file of await sourcesUnder(join(REPO, 'src'))) {
    const text = await readFile(file, 'utf8')
    // Type-only imports are erased at build and load nothing.
    for (const match of text.matchAll(/^import\s+(type\s+)?[^'"]*from\s+'([^']+)'/gm)) {
      if (match[2]!.startsWith('@sinclair/typebox') && match[1] === undefined) offenders.push(`${relative(REPO, file)}: ${match[0]}`)
      if (match[2] === '#typebox') viaBundle++
    }
  }

  assert.deepEqual(offenders, [])
  // protocol.ts (the schemas) and peer-client.ts (the answer checks) at least.
  assert.ok(viaBundle >= 2, `only ${viaBundle} imports of #typebox in src/`)
})

test('#typebox is the bundle, and it builds and checks schemas as TypeBox does', async () => {
  const {Type, TypeCompiler} = await import('#typebox')
  const resolved = import.meta.resolve('#typebox')
  assert.equal(relative(REPO, new URL(resolved).pathname), join('dist', 'vendor', 'typebox.js'))
  const check = TypeCompiler.Compile(Type.Object({name: Type.String({minLength: 1}), size: Type.Integer({minimum: 0})}, {additionalProperties: false}))
  assert.equal(check.Check({name: 'a', size: 1}), true)
  assert.equal(check.Check({name: '', size: 1}), false)
  assert.equal(check.Check({name: 'a', size: 1, extra: true}), false)
})
