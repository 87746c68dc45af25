import {createRequire} from 'node:module'

import type {FastifyServerOptions} from 'fastify'

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>
// fastify's compiler factories, as it calls them (lib/schema-controller.js): the route's schema in, a function out.
type ValidatorFactory = (externalSchemas: unknown, options: unknown) => (route: {schema: unknown}) => Validator
type SerializerFactory = (externalSchemas: unknown, options: unknown) => unknown

/** A compiled validator as fastify calls it (lib/validation.js): `.errors` after a false, `.schemaEnv` for Ajv's. */
interface Validator {
  (data: unknown, context?: unknown): unknown
  errors?: unknown
  schemaEnv?: unknown
}

// The compilers fastify would load itself, resolved from fastify's own place (they are its
// dependencies, not ours).
const requireOfFastify = createRequire(createRequire(import.meta.url).resolve('fastify'))

/**
 * Ajv options of the servers, over fastify's (which stay: coercion, defaults, removal of undeclared
 * properties, one error). Neither changes what a request must be: `validateSchema: false` skips
 * checking each of our schemas against JSON Schema's meta-schema, which compiled the meta-schema
 * itself in every server (~0.15 CPU-s), and test/lazy-validators.test.ts checks them all against it
 * instead; `code.optimize: false` skips Ajv's passes that tidy the generated code (same checks,
 * a few more statements; ~0.07 CPU-s over every route).
 */
export const AJV_OPTIONS = {validateSchema: false, code: {optimize: false}} as const

/**
 * fastify's own compilers (Ajv for requests, fast-json-stringify for answers), loaded and run only
 * when first needed. By default fastify loads both when a server is made (122 files: Ajv, its
 * formats, fast-json-stringify) and compiles every route's schemas when it starts listening (the
 * largest part of a master's start after module loading); a server that starts, heartbeats and
 * stops, as most do in tests, uses a few routes. Here each route's part is compiled at its first
 * request, by the same compiler with the same options (and AJV_OPTIONS), so what passes and every
 * error message are the same (docs/performance.md, "Server start-up").
 *
 * With a custom compiler fastify leaves header schemas as they are instead of lower-casing their
 * names: the protocol names every header in lower case already (as node delivers them).
 */
export function lazyCompilers(): CompilersFactory {
  const buildValidator: ValidatorFactory = (externalSchemas, options) => {
    let compile: ReturnType<ValidatorFactory> | undefined
    const {customOptions, ...rest} = options as {customOptions?: object}
    const serverOptions = {...rest, customOptions: {...AJV_OPTIONS, ...customOptions}}
    const compiler = () => (compile ??= (requireOfFastify('@fastify/ajv-compiler') as () => ValidatorFactory)()(externalSchemas, serverOptions))
    return (route) => compiledOnFirstUse(() => compiler()(route))
  }

  // Only a route that declares an answer schema asks for it (ours check answers in the client).
  const buildSerializer: SerializerFactory = (externalSchemas, options) =>
    (requireOfFastify('@fastify/fast-json-stringify-compiler') as () => SerializerFactory)()(externalSchemas, options)

  return {buildValidator, buildSerializer} as unknown as CompilersFactory
}

/** A validator that compiles itself when first called (or asked whether it is Ajv's), then is that one. */
function compiledOnFirstUse(compile: () => Validator): Validator {
  let compiled: Validator | undefined
  const real = () => (compiled ??= compile())
  const validate: Validator = (data, context) => {
    const fn = real()
    // fastify passes the context (Ajv's parent data) only to a validator with a schemaEnv, as we
    // say below we are exactly when the real one is: forward what came.
    const valid = context === undefined ? fn(data) : fn(data, context)
    // fastify reads a failure's reasons from the function it called.
    validate.errors = fn.errors
    return valid
  }

  Object.defineProperty(validate, 'schemaEnv', {get: () => real().schemaEnv})
  return validate
}
