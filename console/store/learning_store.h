/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_LEARNING_STORE_H
#define VIGIL_CONSOLE_LEARNING_STORE_H

/*
 * What the console stores of the defenders' learning (operator commands
 * for the defenders are in commands.h, the read side in learning_queries.h).
 *
 * Ingest (called by store_ingest inside its batch transaction, so every
 * write below is exactly once per (host, seq)):
 *   - Deviation  -> one audits row: kind, severity, service, exe, a one-line
 *                   summary, detail {object, raw, expected, pid, chain, ts},
 *                   and its process's container (container_id, _name,
 *                   _image, _runtime; NULL outside containers).
 *   - ModelDelta -> upsert of models (host, service); reset deletes the
 *                   model's entries first; each entry is then deleted
 *                   (removed) or upserted with the values it carries.
 *   - Event.activity -> one activity row (in ingest.c, by COPY).
 *
 * The rules an item must follow, or be left out and listed in the batch's
 * "malformed_input" audit (field names as "deviation[2].severity"):
 *   text fields:  valid UTF-8; service <= 512 bytes, exe/pattern/object/raw
 *                 <= 4096, expected <= 8192, note <= 4096, chain comm <= 256,
 *                 activity user/tty <= 256 and summary <= 8192 bytes;
 *                 service, exe, kind, pattern and object must not be empty.
 *   kinds:        deviation kind new_program|new_write|sensitive_read|
 *                 new_listen|new_peer|new_client|new_read; severity
 *                 low|medium|high; entry kind program|write|sensitive_read|
 *                 listen|connect|accept|read; model state learning|active.
 *   numbers:      deviation ts_ns not 0; times in ms up to year 9999 (0 is
 *                 "not set"); counts and learn_drops up to INT64_MAX;
 *                 activity session and event pid up to INT32_MAX.
 *   sizes:        at most LEARN_CHAIN_MAX chain links per deviation and
 *                 LEARN_DELTA_ENTRIES_MAX entries per delta.
 *   containers:   a deviation's container_id is "" or 64 lowercase hex;
 *                 its name and image at most LEARN_CONTAINER_MAX bytes of
 *                 printable ASCII without spaces; its runtime "", docker,
 *                 podman, containerd or cri-o.  Name, image and runtime
 *                 only with an id.
 * Within one delta, entries are applied in order: when one (exe, kind,
 * pattern) appears several times, the last one wins.
 *
 * The functions that apply these rules are private to the store
 * (store_priv.h) and run inside store_ingest's transaction, under its lock.
 */

#define LEARN_SERVICE_MAX	512
#define LEARN_PATH_MAX		4096 /* exe, pattern, object, raw */
#define LEARN_EXPECTED_MAX	8192
#define LEARN_NOTE_MAX		4096
#define LEARN_COMM_MAX		256
#define LEARN_USER_MAX		256 /* activity user and tty */
#define LEARN_SUMMARY_MAX	8192
#define LEARN_CHAIN_MAX		64
#define LEARN_CONTAINER_MAX	255 /* a deviation's container name and image */
#define LEARN_DELTA_ENTRIES_MAX 20000

#endif
