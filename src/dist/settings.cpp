#include "kiln/dist/settings.hpp"

#include <optional>
#include <variant>

namespace kiln::dist {

using config::KeyDecl;
using config::Type;

namespace {

void add(config::Registry& r, KeyDecl&& decl) {
  r.add(std::move(decl).in_section("dist").owned_by("dist"));
}

}  // namespace

void register_settings(config::Registry& r) {
  add(r, KeyDecl("dist.scheduler_url", "KILN_DIST_SCHEDULER_URL", Type::string, "",
                 "the build cluster's scheduler, `http(s)://host:port`: a miss is compiled on "
                 "the cluster (docs/cluster.md); empty: locally")
             .checked_by([](config::Value& v) -> std::optional<std::string> {
               auto& s = std::get<std::string>(v);
               while (s.ends_with("/")) {
                 s.pop_back();
               }
               if (!s.empty() && !s.starts_with("http://") && !s.starts_with("https://")) {
                 return "must be an http:// or https:// URL";
               }
               return std::nullopt;
             }));
  add(r, KeyDecl("dist.token", "KILN_DIST_TOKEN", Type::string, "",
                 "the client token the scheduler expects, or the path of a file holding it")
             .redacted(config::Redact::secret));
  add(r, KeyDecl("dist.scheduler_ca", "KILN_DIST_SCHEDULER_CA", Type::string, "",
                 "PEM file to trust for an `https://` scheduler; empty: the system's store"));
  add(r, KeyDecl("dist.fallback_to_local", "KILN_DIST_FALLBACK_TO_LOCAL", Type::boolean, "true",
                 "compile locally when the cluster cannot (counted by reason, warned once); "
                 "`false` (CI farms) fails the compile with a message instead"));
  add(r, KeyDecl("dist.scheduler_wait_s", "KILN_DIST_SCHEDULER_WAIT_S", Type::integer, "10",
                 "how long a compile keeps asking a scheduler that does not answer (a restart), "
                 "with backoff, before it falls back; then the cluster is skipped for 30 s")
             .between(0, 3600)
             .counting("seconds"));
  add(r, KeyDecl("dist.retry_limit", "KILN_DIST_RETRY_LIMIT", Type::integer, "3",
                 "other workers tried after the first one fails a job")
             .between(0, 100));
}

DistSettings dist_settings(const config::Values& values) {
  DistSettings s;
  s.scheduler_url = values.get_string("dist.scheduler_url");
  s.token = values.get_string("dist.token");
  s.scheduler_ca = values.get_string("dist.scheduler_ca");
  s.fallback_to_local = values.get_bool("dist.fallback_to_local");
  s.retry_limit = static_cast<int>(values.get_int("dist.retry_limit"));
  s.scheduler_wait_s = static_cast<int>(values.get_int("dist.scheduler_wait_s"));
  return s;
}

}  // namespace kiln::dist
