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
// docs/deploy.md says to create), every $(VAR) an argument names is set.
// Then how the defenders get their identity (docs/deploy.md, "Kubernetes"):
// they enroll with the join token in the Secret made by hand, trusting the
// CA the consoles sign with, and keep key and certificate in a hostPath
// state directory that only root reads, so that restarts and renewals keep
// them; no certificate Secret per node.  Then negative controls: broken
// copies of the manifests, each of which the same checks must refuse for
// the reason it was broken for.
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
// Secrets the operator makes by hand (docs/deploy.md): the nodes' join token,
// made with vigilctl once the consoles run, and its one key.
const JOIN_TOKEN = "vigil-join-token", JOIN_TOKEN_KEY = "token";
const MADE_BY_HAND = new Set([`Secret/${JOIN_TOKEN}`]);
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

const parsed = new Map();

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
	/* The type declarations are parsed once for every tree checked (the negative controls). */
	host.getSourceFile = (f, lang) => {
		if (f === name) return ts.createSourceFile(f, source, lang);
		if (!parsed.has(f)) parsed.set(f, getSourceFile(f, lang));
		return parsed.get(f);
	};
	host.fileExists = (f) => f === name || fileExists(f);
	/* skipLibCheck: the declarations are the reference, not what is checked. */
	const program = ts.createProgram([name], {
		strict: true, noEmit: true, types: [], skipLibCheck: true,
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
			/* Kubernetes expands $(VAR) in command and args from the container's env only. */
			const env = new Set((c.env || []).map((e) => e.name));
			for (const a of [...(c.command || []), ...(c.args || [])])
				for (const m of String(a).matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g))
					if (!env.has(m[1]))
						problems.push(`${at}: ${c.name} names $(${m[1]}), which its env does not set`);
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

/* A generator's files as {key: source path} ("key=path", or the path's file name). */
function generatorFiles(g) {
	const out = {};
	for (const f of g?.files || []) {
		const eq = f.indexOf("=");
		out[eq > 0 ? f.slice(0, eq) : path.posix.basename(f)] = eq > 0 ? f.slice(eq + 1) : f;
	}
	return out;
}

/* The value of option name in args ("--opt VALUE" or "--opt=VALUE"); undefined when absent. */
function optionOf(args, name) {
	for (let i = 0; i < args.length; i++) {
		if (args[i] === name) return args[i + 1] ?? "";
		if (String(args[i]).startsWith(`${name}=`)) return String(args[i]).slice(name.length + 1);
	}
	return undefined;
}

/* The mount of container c (and its volume) that holds file p: the longest mountPath above it. */
function mountOf(c, volumes, p) {
	let best;
	for (const m of c.volumeMounts || [])
		if ((p === m.mountPath || p.startsWith(`${m.mountPath.replace(/\/$/, "")}/`)) &&
		    (!best || m.mountPath.length > best.mount.mountPath.length))
			best = { mount: m, volume: volumes.get(m.name) };
	if (best) best.rel = p === best.mount.mountPath ? "" : p.slice(best.mount.mountPath.replace(/\/$/, "").length + 1);
	return best;
}

/* defender.conf's "key = value" lines: the first value of each key. */
function confValues(text) {
	const out = {};
	for (const line of String(text).split("\n")) {
		const m = /^\s*([a-z_]+)\s*=\s*(.*?)\s*$/.exec(line);
		if (m && !line.trimStart().startsWith("#") && !(m[1] in out)) out[m[1]] = m[2];
	}
	return out;
}

/* Whether a file the container reads at p is a key of the ConfigMap or Secret mounted there. */
function keyMounted(mo, configMaps, secretGens, name) {
	const v = mo.volume, file = mo.mount.subPath || mo.rel;
	const src = v.configMap ?? v.secret;
	const items = src?.items;
	const key = items ? items.find((i) => i.path === file)?.key : file;
	if (key === undefined) return false;
	if (v.configMap) {
		const data = configMaps.get(v.configMap.name);
		return data !== undefined && key in data;
	}
	const keys = secretGens.get(v.secret.secretName);
	return keys === undefined ? v.secret.secretName === name && key === JOIN_TOKEN_KEY : key in keys;
}

/*
 * How the defenders get and keep their identity (docs/deploy.md,
 * "Kubernetes"), what vigil-defender --enroll needs to work in the pod: the
 * token from the Secret made by hand, trust in the CA that signs, the
 * console's API (not the link), key and certificate in a hostPath state
 * directory that is root's alone; and the consoles able to sign.
 */
function enrollmentCheck(files, docs) {
	const problems = [];
	const k = YAML.parse(files.get("kustomization.yaml") || "null") || {};
	const ns = k.namespace || "default";
	/* ConfigMaps' data (generated ones: keys only), generated Secrets' and ConfigMaps' source files. */
	const configMaps = new Map(), secretGens = new Map(), cmSources = new Map();
	for (const d of docs)
		if (d.obj.kind === "ConfigMap") configMaps.set(d.obj.metadata?.name, d.obj.data || {});
	for (const g of k.configMapGenerator || []) {
		const f = generatorFiles(g);
		configMaps.set(g.name, Object.fromEntries(Object.keys(f).map((key) => [key, null])));
		cmSources.set(g.name, f);
	}
	for (const g of k.secretGenerator || []) secretGens.set(g.name, generatorFiles(g));

	const ds = docs.find((d) => d.obj.kind === "DaemonSet" && d.obj.metadata?.name === "vigil-defender");
	const spec = ds && podSpecOf(ds.obj);
	const c = spec?.containers?.find((x) => x.name === "defender");
	if (!c) return ["no DaemonSet vigil-defender with a container named defender"];
	const at = `${ds.file} DaemonSet/vigil-defender`;
	const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
	const args = [...(c.command || []), ...(c.args || [])].map(String);

	/* The configuration it runs with. */
	const confPath = optionOf(args, "--config");
	const confMount = confPath && mountOf(c, volumes, confPath);
	const confData = confMount?.volume?.configMap &&
		configMaps.get(confMount.volume.configMap.name)?.[confMount.mount.subPath || confMount.rel];
	if (typeof confData !== "string")
		return [...problems, `${at}: --config ${confPath} is no file of a ConfigMap in the manifests`];
	const conf = confValues(confData);

	/* The join token: a file of the Secret made by hand, never on the command line. */
	if (optionOf(args, "--enroll") !== undefined)
		problems.push(`${at}: --enroll puts the join token in the pod's spec and in ps: use --enroll-token-file`);
	const tokenPath = optionOf(args, "--enroll-token-file");
	const tokenMount = tokenPath && mountOf(c, volumes, tokenPath);
	if (!tokenPath)
		problems.push(`${at}: the defender does not enroll (no --enroll-token-file from Secret ${JOIN_TOKEN})`);
	else if (!tokenMount?.volume?.secret || tokenMount.volume.secret.secretName !== JOIN_TOKEN ||
		 !keyMounted(tokenMount, configMaps, secretGens, JOIN_TOKEN))
		problems.push(`${at}: --enroll-token-file ${tokenPath} is not the key ${JOIN_TOKEN_KEY} of the join token's Secret ${JOIN_TOKEN} as mounted`);

	/* Trust: the CA file, from a ConfigMap or Secret, and the configuration's ca the same file. */
	const caPath = optionOf(args, "--ca"), pin = optionOf(args, "--ca-sha256");
	let caSource;
	if (caPath === undefined && pin === undefined) {
		problems.push(`${at}: the defender enrolls trusting no CA (--ca FILE or --ca-sha256 HEX)`);
	} else if (pin !== undefined) {
		if (!/^[0-9a-fA-F]{64}$/.test(pin.replace(/:/g, "")))
			problems.push(`${at}: --ca-sha256 ${pin} is not 64 hex digits`);
	} else {
		const mo = mountOf(c, volumes, caPath);
		const v = mo?.volume;
		if (!v || !(v.configMap || v.secret) || !keyMounted(mo, configMaps, secretGens, ""))
			problems.push(`${at}: --ca ${caPath} is no file of a ConfigMap or Secret mounted in the defender`);
		else if (conf.ca !== caPath)
			problems.push(`${at}: --ca ${caPath} is not the configuration's ca (${conf.ca}): the enrollment would refuse it`);
		else if (v.configMap)
			caSource = cmSources.get(v.configMap.name)?.[mo.mount.subPath || mo.rel];
		else
			caSource = secretGens.get(v.secret.secretName)?.[mo.mount.subPath || mo.rel];
	}
	for (const [name, v] of volumes)
		if (v.secret && v.secret.secretName !== JOIN_TOKEN)
			problems.push(`${at}: volume ${name} mounts Secret ${v.secret.secretName}: the defenders' only Secret is the join token (certificates are enrolled, not copied by hand)`);

	/* The console's API, where hosts enroll: a Service's port named api. */
	const consoleAt = optionOf(args, "--console") || "";
	const m = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)$/.exec(consoleAt);
	const svc = m && docs.find((d) => d.obj.kind === "Service" && d.obj.metadata?.name === m[1]);
	const apiPort = svc?.obj.spec?.ports?.find((p) => p.name === "api");
	if (!m || m[2] !== ns || !apiPort || String(apiPort.port) !== m[3])
		problems.push(`${at}: --console ${consoleAt} is not the console Service's API port (SERVICE.${ns}.svc:PORT, the port named api)`);

	/* The identity in a hostPath state directory, root's alone. */
	const state = conf.state_dir, sm = state && mountOf(c, volumes, state);
	if (!sm || sm.rel !== "" || !sm.volume?.hostPath ||
	    !["DirectoryOrCreate", "Directory"].includes(sm.volume.hostPath.type) || sm.mount.readOnly)
		problems.push(`${at}: the configuration's state_dir ${state} is not a writable hostPath directory of the node: the identity and its renewals would be lost with the pod`);
	for (const key of ["cert", "key"])
		if (!state || !String(conf[key] || "").startsWith(`${state}/`))
			problems.push(`${at}: the configuration's ${key} ${conf[key]} is not in the state directory ${state}: a renewal written there would be lost with the pod`);
	if (sm?.volume?.hostPath) {
		const chmods = (spec.initContainers || []).some((ic) => {
			const im = (ic.volumeMounts || []).find((x) => x.name === sm.mount.name && !x.readOnly);
			const cmd = [...(ic.command || []), ...(ic.args || [])].join(" ");
			return im && new RegExp(`\\bchmod\\s+0?700\\s+${im.mountPath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/?(\\s|$)`).test(cmd);
		});
		if (!chmods)
			problems.push(`${at}: no init container makes the state directory ${sm.volume.hostPath.path} 0700 (kubelet makes it 0755; the key is in it)`);
	}

	/* The Kubernetes runtimes' records of containers, read only at the node's paths (docs/events.md). */
	for (const dir of ["/run/containerd/io.containerd.runtime.v2.task", "/var/lib/containers/storage/overlay-containers"]) {
		const rm = mountOf(c, volumes, dir);
		if (!rm || rm.rel !== "" || rm.volume?.hostPath?.path !== dir || !rm.mount.readOnly)
			problems.push(`${at}: ${dir} is not the node's, mounted read only: containers would be known by id alone, not by image`);
	}

	/* The consoles sign with the CA the defenders trust. */
	const con = docs.find((d) => d.obj.kind === "Deployment" && d.obj.metadata?.name === "vigil-console");
	const cc = con && podSpecOf(con.obj)?.containers?.find((x) => x.name === "console");
	if (!cc)
		return [...problems, "no Deployment vigil-console with a container named console"];
	const cat = `${con.file} Deployment/vigil-console`;
	const cvolumes = new Map((podSpecOf(con.obj).volumes || []).map((v) => [v.name, v]));
	const caDir = optionOf([...(cc.command || []), ...(cc.args || [])].map(String), "--enroll-ca-dir");
	const cm = caDir && mountOf(cc, cvolumes, caDir);
	const signer = cm?.rel === "" && cm.volume?.secret && secretGens.get(cm.volume.secret.secretName);
	if (!caDir)
		problems.push(`${cat}: no --enroll-ca-dir: the consoles cannot sign enrollments or renewals`);
	else if (!signer || !signer["ca.crt"] || !signer["ca.key"])
		problems.push(`${cat}: --enroll-ca-dir ${caDir} is not a mounted Secret of ca.crt and ca.key from the kustomization`);
	else if (caSource !== undefined && signer["ca.crt"] !== caSource)
		problems.push(`${at}: the defenders trust ${caSource}, not the CA that signs them (${signer["ca.crt"]})`);
	return problems;
}

async function checkTree(files) {
	const { docs, problems } = parseTree(files);
	return [...problems, ...typeCheck(docs), ...(await schemaCheck(docs)), ...referenceCheck(files, docs),
		...enrollmentCheck(files, docs)];
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

/*
 * The broken copies: what is broken, the file, the edit, and what the
 * refusal must say (a copy refused for another reason proves nothing).
 */
const CONTROLS = [
	["a misspelled field (hostPid)", "defender-daemonset.yaml", (t) => t.replace("hostPID: true", "hostPid: true"), /'"hostPid"' does not exist/],
	["a wrong type (hostPID: \"yes\")", "defender-daemonset.yaml", (t) => t.replace("hostPID: true", "hostPID: \"yes\""), /'string' is not assignable to type 'boolean/],
	["a container without a name", "console-deployment.yaml", (t) => t.replace("- name: console\n", "- \n"), /Property 'name' is missing/],
	["an unknown capability field", "defender-daemonset.yaml", (t) => t.replace("drop: [\"ALL\"]\n              # Exactly", "dorp: [\"ALL\"]\n              # Exactly"), /'"dorp"' does not exist in type 'Capabilities'/],
	["a Service that selects no pods", "console-deployment.yaml", (t) => t.replace("  selector:\n    app.kubernetes.io/name: vigil-console", "  selector:\n    app.kubernetes.io/name: vigil-consol"), /its selector matches no workload's pods/],
	["a selector that misses its pods", "defender-daemonset.yaml", (t) => t.replace("    matchLabels:\n      app.kubernetes.io/name: vigil-defender", "    matchLabels:\n      app.kubernetes.io/name: vigil-defendr"), /selector .*vigil-defendr does not match its pods/],
	["a kind the API does not have", "namespace.yaml", (t) => t.replace("kind: Namespace", "kind: Namespaces"), /no exported member named 'Namespaces'|Namespaces is not a Kubernetes API type/],
	["a Secret defined nowhere", "console-deployment.yaml", (t) => t.replace("secretName: vigil-console-tls", "secretName: vigil-console-tsl"), /Secret vigil-console-tsl, defined nowhere/],
	["a manifest missing from the kustomization", "kustomization.yaml", (t) => t.replace("  - postgres.yaml\n", ""), /postgres.yaml is not listed in resources/],
	["a kustomization naming a missing file", "postgres.yaml", () => null, /resource postgres.yaml does not exist/],
	["a YAML key given twice", "defender-config.yaml", (t) => t.replace("metadata:\n", "metadata:\n  name: twice\n"), /Map keys must be unique/],
	["an integer port as a string", "postgres.yaml", (t) => t.replace("containerPort: 5432", "containerPort: \"5432\""), /'string' is not assignable to type 'number'/],
	// How the defenders enroll and keep their identity.
	["the state directory on a memory volume (the identity lost with the pod)", "defender-daemonset.yaml",
		(t) => t.replace("        - name: state\n          hostPath:\n            path: /var/lib/vigil/defender\n            type: DirectoryOrCreate\n",
			"        - name: state\n          emptyDir:\n            medium: Memory\n"),
		/state_dir .* is not a writable hostPath/],
	["the certificate outside the state directory (a renewal lost at restart)", "defender-config.yaml",
		(t) => t.replace("cert = /var/lib/vigil/defender/identity/host.crt", "cert = /etc/vigil/pki/host.crt"),
		/cert \/etc\/vigil\/pki\/host.crt is not in the state directory/],
	["a Secret of certificates in the defenders again (the hand-copied path)", "defender-daemonset.yaml",
		(t) => t.replace("      volumes:\n", "      volumes:\n        - name: certs\n          secret:\n            secretName: vigil-console-tls\n"),
		/mounts Secret vigil-console-tls: the defenders' only Secret is the join token/],
	["the join token on the command line", "defender-daemonset.yaml",
		(t) => t.replace("- --enroll-token-file\n            - /etc/vigil/join/token", "- --enroll\n            - 0123456789abcdef.0123"),
		/--enroll puts the join token in the pod's spec/],
	["a token file the Secret does not hold", "defender-daemonset.yaml",
		(t) => t.replace("            - /etc/vigil/join/token\n", "            - /etc/vigil/join/join-token\n"),
		/--enroll-token-file \/etc\/vigil\/join\/join-token is not the key token/],
	["an enrollment that trusts no CA", "defender-daemonset.yaml",
		(t) => t.replace("            - --ca\n            - /etc/vigil/console-ca/ca.crt\n", ""),
		/enrolls trusting no CA/],
	["an enrollment at the link's port, not the API's", "defender-daemonset.yaml",
		(t) => t.replace("vigil-console.vigil.svc:8443", "vigil-console.vigil.svc:7443"),
		/--console vigil-console.vigil.svc:7443 is not the console Service's API port/],
	["consoles that cannot sign (no --enroll-ca-dir)", "console-deployment.yaml",
		(t) => t.replace("            - --enroll-ca-dir=/etc/vigil/enroll-ca\n", ""),
		/no --enroll-ca-dir/],
	["defenders that trust another CA than the one that signs them", "kustomization.yaml",
		(t) => t.replace("  - name: vigil-console-ca\n    files:\n      - secrets/console/ca.crt\n",
			"  - name: vigil-console-ca\n    files:\n      - ca.crt=secrets/other/ca.crt\n"),
		/trust secrets\/other\/ca.crt, not the CA that signs them/],
	["$(NODE_NAME) that no env sets", "defender-daemonset.yaml",
		(t) => t.replace("            - name: NODE_NAME\n", "            - name: NODENAME\n"),
		/names \$\(NODE_NAME\), which its env does not set/],
	["the state directory left readable by all (0755)", "defender-daemonset.yaml",
		(t) => t.replace("[\"chmod\", \"0700\",", "[\"chmod\", \"0755\","),
		/no init container makes the state directory .* 0700/],
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
	for (const [what, file, edit, reason] of CONTROLS) {
		const found = (await checkTree(mutate(files, file, edit))).filter((p) => !baseline.has(p));
		const because = found.find((p) => reason.test(p));
		ok(because !== undefined, `negative control refused: ${what}`,
			found.length === 0 ? ["the broken copy passed"] : [`refused, but not with ${reason}:`, ...found]);
		if (because !== undefined) console.log(`#   (${because.replace(/\s+/g, " ").slice(0, 300)})`);
	}
	console.log(`1..${n}`);
	process.exit(failed ? 1 : 0);
}

main().catch((e) => {
	console.log(`Bail out! ${e.stack}`);
	process.exit(1);
});
