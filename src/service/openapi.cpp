// The REST API as an OpenAPI 3.0 document (docs/service-api.md is the prose
// form of the same; a test checks that every path here is answered).
#include <string_view>

#include "kiln/service/service.hpp"

namespace kiln::service {

std::string_view openapi_document() {
  return R"json({
  "openapi": "3.0.3",
  "info": {
    "title": "kiln-server",
    "version": "0",
    "description": "kiln's parallel compile service: programs (CMake projects or kiln-program.toml recipes) are compiled by the replica whose worker id is the program's shard (first 8 bytes of its UUID, big-endian, modulo the replica count); replica 0 keeps the binaries. See docs/service-api.md."
  },
  "paths": {
    "/v0/programs": {
      "get": {
        "summary": "List programs",
        "responses": {
          "200": {"description": "All programs, by name", "content": {"application/json": {"schema": {"type": "object", "properties": {"programs": {"type": "array", "items": {"$ref": "#/components/schemas/Program"}}}}}}},
          "503": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/v0/programs/{name}": {
      "parameters": [{"$ref": "#/components/parameters/Name"}],
      "put": {
        "summary": "Create a program, or a new version of it when its sources or recipe changed",
        "parameters": [
          {"name": "target", "in": "query", "required": false, "schema": {"type": "string"}, "description": "The executable target to build; default: the program's name"},
          {"name": "cmake_arg", "in": "query", "required": false, "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": true, "description": "-DNAME[:TYPE]=VALUE, repeated"}
        ],
        "requestBody": {"required": true, "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}, "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, "description": "A tar archive (gzip, xz, zstd, bzip2 or none) with CMakeLists.txt or kiln-program.toml at its top, or in its single top directory"},
        "responses": {
          "201": {"description": "Created (version 1)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Program"}}}},
          "200": {"description": "Updated (a new version when changed; unchanged otherwise)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Program"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "413": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      },
      "get": {
        "summary": "One program",
        "responses": {
          "200": {"description": "The program", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Program"}}}},
          "404": {"$ref": "#/components/responses/Error"}
        }
      },
      "delete": {
        "summary": "Delete a program (its binary is removed by the leader's cleanup)",
        "responses": {"204": {"description": "Deleted"}, "404": {"$ref": "#/components/responses/Error"}}
      }
    },
    "/v0/programs/{name}/binary": {
      "parameters": [{"$ref": "#/components/parameters/Name"}],
      "get": {
        "summary": "The compiled executable, from the leader (proxied by other replicas)",
        "responses": {
          "200": {"description": "The executable", "headers": {"X-Kiln-Sha256": {"schema": {"type": "string"}, "description": "SHA-256 of the body, lowercase hex"}}, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
          "404": {"$ref": "#/components/responses/Error"},
          "409": {"$ref": "#/components/responses/Error"},
          "502": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/v0/openapi.json": {
      "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.0", "content": {"application/json": {}}}}}
    },
    "/v0/internal/binaries/{id}/{version}": {
      "parameters": [
        {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}},
        {"name": "version", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}
      ],
      "put": {
        "summary": "Leader only: receive a binary built by another replica",
        "parameters": [{"name": "X-Kiln-Sha256", "in": "header", "required": true, "schema": {"type": "string"}}],
        "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {
          "201": {"description": "Stored (written, checked, fsynced, renamed)"},
          "400": {"$ref": "#/components/responses/Error"},
          "401": {"$ref": "#/components/responses/Error"},
          "421": {"$ref": "#/components/responses/Error"},
          "422": {"$ref": "#/components/responses/Error"},
          "507": {"$ref": "#/components/responses/Error"}
        }
      },
      "get": {
        "summary": "Leader only: a stored binary",
        "responses": {"200": {"description": "The binary"}, "404": {"$ref": "#/components/responses/Error"}}
      }
    },
    "/healthz": {
      "get": {"summary": "This replica's health", "responses": {"200": {"description": "Healthy"}, "503": {"description": "Database unreachable, data directory not writable, or its disk 95 % full"}}}
    },
    "/cluster_healthz": {
      "get": {"summary": "Every replica's health", "responses": {"200": {"description": "All healthy"}, "503": {"description": "At least one replica unhealthy or missing"}}}
    },
    "/metrics": {
      "get": {"summary": "Prometheus text format", "responses": {"200": {"description": "Counters", "content": {"text/plain": {}}}}}
    }
  },
  "components": {
    "parameters": {
      "Name": {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,127}$"}}
    },
    "responses": {
      "Error": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    },
    "schemas": {
      "Error": {"type": "object", "required": ["error", "code"], "properties": {"error": {"type": "string"}, "code": {"type": "string"}}},
      "Program": {
        "type": "object",
        "required": ["name", "id", "version", "status", "compiled_by", "log", "cache", "binary_sha256"],
        "properties": {
          "name": {"type": "string"},
          "id": {"type": "string", "format": "uuid"},
          "version": {"type": "integer"},
          "status": {"type": "string", "enum": ["Pending", "Compiling", "Success", "CompileError", "SystemError"]},
          "compiled_by": {"type": "integer", "nullable": true, "description": "Worker id of the replica that compiled (or compiles) it"},
          "log": {"type": "string", "description": "The build's output verbatim on errors"},
          "cache": {"type": "object", "properties": {"hits": {"type": "integer"}, "misses": {"type": "integer"}}},
          "binary_sha256": {"type": "string", "nullable": true},
          "compile_count": {"type": "integer", "description": "Claims of any version, ever"},
          "source_sha256": {"type": "string"},
          "target": {"type": "string"},
          "cmake_args": {"type": "array", "items": {"type": "string"}},
          "worker": {"type": "integer", "description": "The replica whose shard holds it"},
          "created_at_ms": {"type": "integer"},
          "updated_at_ms": {"type": "integer"}
        }
      }
    }
  }
}
)json";
}

}  // namespace kiln::service
