/* The boundary between kiln and libkiln-dist.so, the build cluster's client
 * (src/dist/client.cpp with libcurl, toolchain packing with libarchive).
 * kiln loads it with dlopen only when a miss goes to the cluster, so that a
 * cache hit never loads libcurl or libarchive. Plain C, versioned. */
#ifndef KILN_DIST_PLUGIN_ABI_H
#define KILN_DIST_PLUGIN_ABI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_DIST_PLUGIN_ABI 1
#define KILN_DIST_PLUGIN_ENTRY "kiln_dist_run_v1"

typedef struct kiln_dist_request {
  int abi; /* KILN_DIST_PLUGIN_ABI */
  /* {"scheduler_url", "token", "scheduler_ca_pem", "client_id", "retry_limit"} */
  const char* settings_json;
  const char* compiler_path;     /* absolute, as the client runs it */
  const char* compiler_identity; /* hex: the toolchain is packed once per identity */
  const char* cache_dir;         /* the packed toolchain is kept below it */
  const char* job;               /* an encoded job (src/dist/job.hpp), toolchain id unset */
  size_t job_size;
} kiln_dist_request;

/* Called once per kiln_dist_run: `result` is an encoded JobResult (NULL when
 * the cluster produced none), `counters_json` the client's counters
 * {"jobs", "succeeded", "retries": {reason: n}, "bytes_sent",
 * "bytes_received"}, `error` a message for the log (or ""). */
typedef void (*kiln_dist_result_fn)(void* ctx, const char* result, size_t result_size,
                                    const char* counters_json, const char* error);

/* Returns 0 when the cluster ran the job (its compiler may still have
 * failed: see the result's exit code), else 1 + dist::DistFailure, or 100
 * when the toolchain could not be packed, 101 for a bad request. */
typedef int (*kiln_dist_run_fn)(const kiln_dist_request* request, kiln_dist_result_fn on_result,
                                void* ctx);

#ifdef __cplusplus
}
#endif

#endif
