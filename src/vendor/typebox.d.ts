// The types of `#typebox` (package.json "imports"): TypeBox's own. At run time `#typebox` is
// dist/vendor/typebox.js, TypeBox bundled into one file by scripts/bundle-typebox.mjs.
export * from '@sinclair/typebox'
export {TypeCompiler, TypeCheck, TypeCompilerTypeGuardError, TypeCompilerUnknownTypeError} from '@sinclair/typebox/compiler'
