// Validates Kubernetes objects against the API's OpenAPI schemas, as compiled
// into the npm package kubernetes-models (scripts/install-helm.sh installs it).
//
//   node validate_objects.mjs <dir holding node_modules/kubernetes-models> < objects.json
//
// stdin: a JSON array of objects (what `helm template` rendered). Each is
// checked by the model class of its apiVersion and kind: types, required
// fields, enumerations, formats. Unknown fields are not reported: the schemas
// do not forbid them. Prints one line for each invalid object; exits 1 if
// any is invalid, 2 on bad usage or an apiVersion/kind it has no model for.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = process.argv[2];
if (!root) {
  console.error("usage: node validate_objects.mjs <schema dir> < objects.json");
  process.exit(2);
}
const objects = JSON.parse(readFileSync(0, "utf8"));
let invalid = 0;
for (const object of objects) {
  const what = `${object.apiVersion} ${object.kind} ${object.metadata?.name}`;
  // Core kinds live in kubernetes-models/v1, the others in <group>/<version>;
  // the ES module is index.mjs (4.x) or index.js (5.x).
  const dir = join(root, "node_modules", "kubernetes-models", object.apiVersion);
  const module = ["index.mjs", "index.js"].map((f) => join(dir, f)).find(existsSync) ?? join(dir, "index.mjs");
  let Model;
  try {
    Model = (await import(pathToFileURL(module).href))[object.kind];
  } catch (e) {
    Model = undefined;
  }
  if (typeof Model !== "function") {
    console.error(`${what}: no schema for this apiVersion and kind`);
    process.exit(2);
  }
  try {
    new Model(object).validate();
  } catch (e) {
    invalid++;
    console.log(`${what}: ${e.message}`);
  }
}
process.exit(invalid ? 1 : 0);
