// Validates Kubernetes objects against the API schemas: reads a multi-document YAML stream (kustomize build's
// output) on stdin and checks every object with kubernetes-models (JSON schemas generated from the Kubernetes
// OpenAPI specification) or, for the Prometheus operator's kinds, @kubernetes-models/prometheus-operator. An object
// of a kind neither knows is an error, not a pass. Prints one line per object; exit 1 on any failure.
import * as k8s from "kubernetes-models";
import * as monitoring from "@kubernetes-models/prometheus-operator";
import { parseAllDocuments } from "yaml";

const input = await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
});

// "networking.k8s.io/v1" -> k8s.networkingK8sIo.v1; "v1" (the core group) -> k8s.v1.
function modelFor(apiVersion, kind) {
  const slash = apiVersion.indexOf("/");
  if (slash < 0) return k8s.v1?.[kind];
  const group = apiVersion.slice(0, slash);
  const version = apiVersion.slice(slash + 1);
  const key = group
    .split(".")
    .map((part, i) => (i === 0 ? part : part.charAt(0).toUpperCase() + part.slice(1)))
    .join("");
  const modules = group === "monitoring.coreos.com" ? monitoring : k8s;
  return modules[key]?.[version]?.[kind];
}

let failures = 0;
let count = 0;
for (const doc of parseAllDocuments(input)) {
  if (doc.errors.length) {
    console.log(`FAIL yaml: ${doc.errors[0].message}`);
    failures++;
    continue;
  }
  const object = doc.toJS();
  if (object === null) continue;
  count++;
  const name = `${object.apiVersion} ${object.kind} ${object.metadata?.name}`;
  const Model = modelFor(object.apiVersion ?? "", object.kind ?? "");
  if (!Model) {
    console.log(`FAIL ${name}: no schema for this kind`);
    failures++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok   ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    failures++;
  }
}
if (count === 0) {
  console.log("FAIL: no objects on stdin");
  failures++;
}
process.exit(failures ? 1 : 0);
