// Files embedded in the executable by `bun build --compile` (imported with
// `with { type: "file" }`): the import is the path to read them from.
declare module "*.so" {
  const path: string;
  export default path;
}
declare module "*.gpg" {
  const path: string;
  export default path;
}
declare module "*/nsh-supervisor" {
  const path: string;
  export default path;
}
declare module "*/nsh-init" {
  const path: string;
  export default path;
}
