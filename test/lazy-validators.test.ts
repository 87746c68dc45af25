import assert from 'node:assert/strict'
import {rm} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {test} from 'node:test'

import {lazyCompilers} from '../src/lib/lazy-validators.js'
import {keeperRoutes, masterRoutes, type Route} from '../src/lib/protocol.js'
import {Master} from '../src/roles/master/master.js'
import {createMasterServer} from '../src/roles/master/server.js'
import {tempDir} from './helpers/cluster.js'

// Servers compile a route's schemas at its first request (lazy-validators.ts): a schema Ajv cannot
// compile would no longer stop a server at start, but fail that route's requests. So compile them
// all here, with the compiler and options a server uses (fastify's defaults and AJV_OPTIONS).
const ROUTES: [string, Route][] = [...Object.entries(masterRoutes).map(([name, route]) => [`master ${name}`, route] as [string, Route]), ...Object.entries(keeperRoutes).map(([name, route]) => [`keeper ${name}`, route] as [string, Route])]
const PARTS = ['params', 'querystring', 'headers', 'body'] as const

test('every request schema of every route compiles with the compiler the servers use', () => {
  const {buildValidator} = lazyCompilers() as unknown as {buildValidator: (schemas: object, options: object) => (route: {schema: unknown; httpPart: string}) => (data: unknown) => boolean}
  const compile = buildValidator({}, {customOptions: {}, plugins: []})
  let compiled = 0
  for (const [name, route] of ROUTES) {
    for (const part of PARTS) {
      if (!route[part]) continue
      const validate = compile({schema: route[part], httpPart: part})
      // The first call compiles; an empty object is valid for no route part that requires a field, and either answer will do.
      assert.doesNotThrow(() => validate({}), `${name} ${part}`)
      compiled++
    }
  }

  assert.ok(compiled > 20, `only ${compiled} schemas were compiled`)
})

test('every header schema names its headers in lower case, as node delivers them', () => {
  // fastify lower-cases header schemas itself only for its default compiler, not for ours.
  for (const [name, route] of ROUTES) {
    const headers = route.headers as {properties?: Record<string, unknown>; required?: string[]} | undefined
    if (!headers) continue
    for (const header of [...Object.keys(headers.properties ?? {}), ...(headers.required ?? [])]) {
      assert.equal(header, header.toLowerCase(), `${name}: header ${header}`)
    }
  }
})

type Compile = (route: {schema: unknown; httpPart: string}) => ((data: unknown) => boolean) & {errors?: unknown}
// fastify's own compiler and Ajv, from fastify's place (they are its dependencies, not ours).
const requireOfFastify = createRequire(createRequire(import.meta.url).resolve('fastify'))

test("every request schema is valid JSON Schema (Ajv's meta-schema check, which the servers skip)", () => {
  const Ajv = (requireOfFastify('ajv') as {default: new () => {validateSchema(schema: unknown): boolean; errorsText(): string}}).default
  const ajv = new Ajv()
  let checked = 0
  for (const [name, route] of ROUTES) {
    for (const part of PARTS) {
      if (!route[part]) continue
      assert.ok(ajv.validateSchema(route[part]), `${name} ${part}: ${ajv.errorsText()}`)
      checked++
    }
  }

  assert.ok(checked > 20, `only ${checked} schemas were checked`)
})

/** Values of the wrong shape for a route part: wrong types, and each declared property given a wrong value. */
function badValues(schema: {properties?: Record<string, unknown>}): unknown[] {
  const wrong = ['', -1, 1.5, 'x'.repeat(5000), '../x', {}, [], null, true]
  const values: unknown[] = [{}, null, [], 'x', 1, true]
  for (const property of Object.keys(schema.properties ?? {})) for (const value of wrong) values.push({[property]: value})
  return values
}

test("with the servers' Ajv options, every route part refuses and accepts exactly what fastify's own compiler does", () => {
  const servers = (lazyCompilers() as unknown as {buildValidator: (schemas: object, options: object) => Compile}).buildValidator({}, {customOptions: {}, plugins: []})
  const fastifys = (requireOfFastify('@fastify/ajv-compiler') as () => (schemas: object, options: object) => Compile)()({}, {customOptions: {}, plugins: []})
  let refused = 0
  for (const [name, route] of ROUTES) {
    for (const part of PARTS) {
      if (!route[part]) continue
      const ours = servers({schema: route[part], httpPart: part})
      const reference = fastifys({schema: route[part], httpPart: part})
      for (const value of badValues(route[part] as {properties?: Record<string, unknown>})) {
        // Validators coerce and strip what they are given: each gets its own copy.
        const verdict = ours(structuredClone(value))
        assert.equal(verdict, reference(structuredClone(value)), `${name} ${part}: ${JSON.stringify(value)?.slice(0, 80)}`)
        if (!verdict) {
          refused++
          assert.ok(ours.errors, `${name} ${part}: a refusal says why`)
        }
      }
    }
  }

  assert.ok(refused > 300, `only ${refused} bad values were refused`)
})

test('a master refuses bad input with 400 and the catalogue error', async () => {
  const dir = await tempDir()
  const master = new Master({dataDir: dir, replicas: 3, heartbeatTimeoutMs: 60_000, replicationIntervalMs: 3_600_000, log: {info() {}, warn() {}}})
  const app = createMasterServer(master, 'silent')
  try {
    for (const body of [{name: 'a', size: -1}, {name: '', size: 1}, {name: 'a', size: 1, sha256: 'x'}, {size: 1}, {name: 'a', size: 'many'}]) {
      const answer = await app.inject({method: 'POST', url: '/uploads', payload: body})
      assert.equal(answer.statusCode, 400, `${JSON.stringify(body)}: ${answer.body}`)
      assert.equal(answer.json<{error: string}>().error, 'DFS_ERR_BAD_REQUEST')
    }
  } finally {
    await app.close()
    await master.stop()
    await rm(dir, {recursive: true, force: true})
  }
})
