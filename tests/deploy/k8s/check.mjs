// SPDX-License-Identifier: Apache-2.0
// The Kubernetes manifests in deploy/k8s, checked offline (TAP on stdout).
//
// Every object is checked twice against the Kubernetes API's own types:
// as a TypeScript object literal of its kubernetes-types interface (which
// refuses unknown fields, a misspelled key included, wrong types and
// missing required fields) and by kubernetes-models' JSON schema validation
// (formats, int-or-string, enums).  Then what ties the files together: the
// kustomization lists every manifest and only existing files, a workload's
// selector matches its pods' labels, a Service selects a workload and names
// its ports, every ConfigMap and Secret a pod uses is defined (or is the one
// docs/deploy.md says to create).  Then negative controls: broken copies of
// the manifests, each of which the same checks must refuse.
//
//   node check.mjs DIR
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// The checker's packages (tests/deploy/k8s/install.sh puts them in node_modules).
let ts, YAML;
try {
	ts = (await import("typescript")).default;
	YAML = (await import("yaml")).default;
	await import("kubernetes-models/v1/Namespace");
} catch (e) {
	console.log(`Bail out! the checker's npm packages are missing: run tests/deploy/k8s/install.sh (${e.message})`);
	process.exit(1);
}

const here = path.dirname(fileURLToPath(import.meta.url));
// Secrets the operator makes by hand (docs/deploy.md): one certificate per node.
const MADE_BY_HAND = new Set(["Secret/vigil-defender-certs"]);
const KUSTOMIZATION_KEYS = new Set(["apiVersion", "kind", "namespace", "resources", "images",
	"secretGenerator", "configMapGenerator", "generatorOptions", "labels", "patches"]);

/* kubernetes-types' module and kubernetes-models' folder for an apiVersion. */
function groupPaths(apiVersion) {
	const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
	const short = group.replace(/\.k8s\.io$/, "").replace(/\.authorization$/, "");
	return {
		types: `kubernetes-types/${short}/${version}`,
		models: group === "core" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`,
	};
}

/* Parse every YAML file of the tree: [{file, index, obj}] and problems. */
function parseTree(files) {
	const docs = [], problems = [];
	for (const [file, text] of files) {
		if (file === "kustomization.yaml") continue;
		YAML.parseAllDocuments(text).forEach((d, index) => {
			for (const e of [...d.errors, ...d.warnings])
				problems.push(`${file}: ${e.message}`);
			const obj = d.toJS();
			if (obj !== null) docs.push({ file, index, obj });
		});
	}
	return { docs, problems };
}

/* The objects as TypeScript literals of their API types; compiler diagnostics as problems. */
function typeCheck(docs) {
	const lines = [], where = [];
	docs.forEach((d, i) => {
		const { apiVersion, kind } = d.obj;
		if (typeof apiVersion !== "string" || typeof kind !== "string") return;
		lines.push(`import type { ${kind} as T${i} } from "${groupPaths(apiVersion).types}";`);
		lines.push(`export const d${i}: T${i} = ${JSON.stringify(d.obj)};`);
		where.push(i);
	});
	const name = path.join(here, "__manifests__.ts");
	const source = lines.join("\n") + "\n";
	const host = ts.createCompilerHost({});
	const getSourceFile = host.getSourceFile.bind(host), fileExists = host.fileExists.bind(host);
	host.getSourceFile = (f, lang) => f === name ? ts.createSourceFile(f, source, lang) : getSourceFile(f, lang);
	host.fileExists = (f) => f === name || fileExists(f);
	const program = ts.createProgram([name], {
		strict: true, noEmit: true, types: [],
		module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Node10,
	}, host);
	const problems = [];
	for (const diag of ts.getPreEmitDiagnostics(program)) {
		let at = "";
		if (diag.file && diag.file.fileName === name && diag.start !== undefined) {
			const line = diag.file.getLineAndCharacterOfPosition(diag.start).line;
			const m = /^export const d(\d+)/.exec(source.split("\n")[line] || "");
			const d = m ? docs[Number(m[1])] : undefined;
			at = d ? `${d.file}[${d.index}] ${d.obj.kind}/${d.obj.metadata?.name}: ` : "";
		}
		problems.push(at + ts.flattenDiagnosticMessageText(diag.messageText, " "));
	}
	return problems;
}

/* kubernetes-models' schema validation of each object. */
async function schemaCheck(docs) {
	const problems = [];
	for (const d of docs) {
		const { apiVersion, kind } = d.obj;
		const at = `${d.file}[${d.index}] ${kind}/${d.obj.metadata?.name}`;
		if (typeof apiVersion !== "string" || typeof kind !== "string") {
			problems.push(`${at}: no apiVersion or kind`);
			continue;
		}
		let Model;
		try {
			Model = (await import(`${groupPaths(apiVersion).models}/${kind}`))[kind];
		} catch {
			problems.push(`${at}: ${apiVersion} ${kind} is not a Kubernetes API type`);
			continue;
		}
		try {
			new Model(d.obj).validate();
		} catch (e) {
			problems.push(`${at}: ${e.message}`);
		}
	}
	return problems;
}

function podSpecOf(obj) {
	return obj.spec?.template?.spec;
}

/* What ties the files together. */
function referenceCheck(files, docs) {
	const problems = [];
	const k = YAML.parse(files.get("kustomization.yaml") || "null");
	if (!k || k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization")
		return ["kustomization.yaml: not a kustomize.config.k8s.io/v1beta1 Kustomization"];
	for (const key of Object.keys(k))
		if (!KUSTOMIZATION_KEYS.has(key)) problems.push(`kustomization.yaml: unknown field ${key}`);
	const listed = new Set(k.resources || []);
	for (const r of listed)
		if (!files.has(r)) problems.push(`kustomization.yaml: resource ${r} does not exist`);
	for (const f of files.keys())
		if (f !== "kustomization.yaml" && !listed.has(f))
			problems.push(`kustomization.yaml: ${f} is not listed in resources`);

	const defined = new Set(MADE_BY_HAND);
	for (const g of k.secretGenerator || []) defined.add(`Secret/${g.name}`);
	for (const g of k.configMapGenerator || []) defined.add(`ConfigMap/${g.name}`);
	for (const d of docs) defined.add(`${d.obj.kind}/${d.obj.metadata?.name}`);
	const imagesMapped = new Set((k.images || []).map((i) => i.name));

	const podLabels = [];
	for (const d of docs) {
		const spec = podSpecOf(d.obj), at = `${d.file} ${d.obj.kind}/${d.obj.metadata?.name}`;
		if (!spec) continue;
		const labels = d.obj.spec.template.metadata?.labels || {};
		podLabels.push({ labels, ports: spec.containers.flatMap((c) => c.ports || []) });
		for (const [key, v] of Object.entries(d.obj.spec.selector?.matchLabels || {}))
			if (labels[key] !== v) problems.push(`${at}: selector ${key}=${v} does not match its pods`);
		for (const v of spec.volumes || []) {
			if (v.secret && !defined.has(`Secret/${v.secret.secretName}`))
				problems.push(`${at}: volume ${v.name} uses Secret ${v.secret.secretName}, defined nowhere`);
			if (v.configMap && !defined.has(`ConfigMap/${v.configMap.name}`))
				problems.push(`${at}: volume ${v.name} uses ConfigMap ${v.configMap.name}, defined nowhere`);
		}
		const volumes = new Set([...(spec.volumes || []), ...(d.obj.spec.volumeClaimTemplates || []).map(
			(t) => t.metadata || {})].map((v) => v.name));
		for (const c of [...(spec.initContainers || []), ...spec.containers]) {
			for (const m of c.volumeMounts || [])
				if (!volumes.has(m.name)) problems.push(`${at}: ${c.name} mounts ${m.name}, no such volume`);
			for (const e of c.env || []) {
				const ref = e.valueFrom?.secretKeyRef;
				if (ref && !defined.has(`Secret/${ref.name}`))
					problems.push(`${at}: ${c.name} env ${e.name} uses Secret ${ref.name}, defined nowhere`);
			}
			const image = (c.image || "").split(":")[0];
			if (image.startsWith("vigil-") && !imagesMapped.has(image))
				problems.push(`${at}: image ${image} has no registry in kustomization.yaml images`);
			const named = new Set((c.ports || []).map((p) => p.name));
			for (const probe of [c.readinessProbe, c.livenessProbe]) {
				const port = probe?.tcpSocket?.port ?? probe?.httpGet?.port;
				if (typeof port === "string" && !named.has(port))
					problems.push(`${at}: ${c.name} probe names port ${port}, which it lacks`);
			}
		}
	}
	for (const d of docs) {
		if (d.obj.kind !== "Service") continue;
		const sel = d.obj.spec?.selector || {}, at = `${d.file} Service/${d.obj.metadata?.name}`;
		const pods = podLabels.filter((p) => Object.entries(sel).every(([key, v]) => p.labels[key] === v));
		if (pods.length === 0) {
			problems.push(`${at}: its selector matches no workload's pods`);
			continue;
		}
		const names = new Set(pods.flatMap((p) => p.ports.map((x) => x.name)));
		for (const p of d.obj.spec.ports || [])
			if (typeof p.targetPort === "string" && !names.has(p.targetPort))
				problems.push(`${at}: targetPort ${p.targetPort} is no port of its pods`);
	}
	return problems;
}

async function checkTree(files) {
	const { docs, problems } = parseTree(files);
	return [...problems, ...typeCheck(docs), ...(await schemaCheck(docs)), ...referenceCheck(files, docs)];
}

function readTree(dir) {
	const files = new Map();
	for (const f of fs.readdirSync(dir).sort())
		if (f.endsWith(".yaml")) files.set(f, fs.readFileSync(path.join(dir, f), "utf8"));
	return files;
}

/* A copy of files with one file's text changed by edit (which must change it). */
function mutate(files, file, edit) {
	const copy = new Map(files), before = copy.get(file) ?? "";
	const after = edit(before);
	if (after === before) throw new Error(`negative control: the edit of ${file} changed nothing`);
	if (after === null) copy.delete(file);
	else copy.set(file, after);
	return copy;
}

const CONTROLS = [
	["a misspelled field (hostPid)", "defender-daemonset.yaml", (t) => t.replace("hostPID: true", "hostPid: true")],
	["a wrong type (hostPID: \"yes\")", "defender-daemonset.yaml", (t) => t.replace("hostPID: true", "hostPID: \"yes\"")],
	["a container without a name", "console-deployment.yaml", (t) => t.replace("- name: console\n", "- \n")],
	["an unknown capability field", "defender-daemonset.yaml", (t) => t.replace("drop: [\"ALL\"]\n              # Exactly", "dorp: [\"ALL\"]\n              # Exactly")],
	["a Service that selects no pods", "console-deployment.yaml", (t) => t.replace("  selector:\n    app.kubernetes.io/name: vigil-console", "  selector:\n    app.kubernetes.io/name: vigil-consol")],
	["a selector that misses its pods", "defender-daemonset.yaml", (t) => t.replace("    matchLabels:\n      app.kubernetes.io/name: vigil-defender", "    matchLabels:\n      app.kubernetes.io/name: vigil-defendr")],
	["a kind the API does not have", "namespace.yaml", (t) => t.replace("kind: Namespace", "kind: Namespaces")],
	["a Secret defined nowhere", "console-deployment.yaml", (t) => t.replace("secretName: vigil-console-tls", "secretName: vigil-console-tsl")],
	["a manifest missing from the kustomization", "kustomization.yaml", (t) => t.replace("  - postgres.yaml\n", "")],
	["a kustomization naming a missing file", "postgres.yaml", () => null],
	["a YAML key given twice", "defender-config.yaml", (t) => t.replace("metadata:\n", "metadata:\n  name: twice\n")],
	["an integer port as a string", "postgres.yaml", (t) => t.replace("containerPort: 5432", "containerPort: \"5432\"")],
];

async function main() {
	const dir = process.argv[2];
	if (!dir) {
		console.log("Bail out! usage: node check.mjs DIR");
		process.exit(1);
	}
	const files = readTree(dir);
	let n = 0, failed = 0;
	const ok = (cond, what, detail = []) => {
		n++;
		console.log(`${cond ? "ok" : "not ok"} ${n} - ${what}`);
		if (!cond) {
			failed++;
			for (const line of detail) console.log(`#   ${String(line).replace(/\s+/g, " ")}`);
		}
	};
	ok(files.size >= 5, `${files.size} YAML files in ${dir}`);
	const problems = await checkTree(files);
	ok(problems.length === 0, "the manifests are valid Kubernetes objects and fit together", problems);
	// A control counts only with a problem the real manifests do not have.
	const baseline = new Set(problems);
	for (const [what, file, edit] of CONTROLS) {
		const found = (await checkTree(mutate(files, file, edit))).filter((p) => !baseline.has(p));
		ok(found.length > 0, `negative control refused: ${what}`, ["the broken copy passed"]);
		if (found.length > 0) console.log(`#   (${found[0].replace(/\s+/g, " ").slice(0, 300)})`);
	}
	console.log(`1..${n}`);
	process.exit(failed ? 1 : 0);
}

main().catch((e) => {
	console.log(`Bail out! ${e.stack}`);
	process.exit(1);
});
