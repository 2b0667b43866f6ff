// `pizza eval` on stories260K as a user runs it. The metrics are checked against a brute-force
// computation that shares nothing with eval's scoring: `pizza local --target-text` on every
// perturbed prompt text (one batch run), and the metrics' definitions coded again here.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "cli/brute_force.h"
#include "cli/cli_helpers.h"
#include "support/subprocess.h"

using namespace pizza::test;

namespace {

namespace dom = simdjson::dom;

double f_of(const std::vector<double>& p) { return std::accumulate(p.begin(), p.end(), 0.0) / static_cast<double>(p.size()); }
double L_of(const std::vector<double>& p) {
  double s = 0;
  for (double x : p) s += std::log(x);
  return s;
}

// Trapezoid AUC of f when the first k of `order` are removed (k = 0..U), against k/U.
double deletion_auc(const std::map<unsigned, std::vector<double>>& probs, const std::vector<size_t>& order) {
  double area = 0, prev = f_of(probs.at(0));
  for (size_t k = 1; k <= kU; ++k) {
    const double cur = f_of(probs.at(mask_of({order.begin(), order.begin() + static_cast<long>(k)})));
    area += (prev + cur) / 2 / kU;
    prev = cur;
  }
  return area;
}

double insertion_auc(const std::map<unsigned, std::vector<double>>& probs, const std::vector<size_t>& order) {
  double area = 0, prev = f_of(probs.at((1u << kU) - 1));
  for (size_t k = 1; k <= kU; ++k) {
    const double cur = f_of(probs.at(mask_of({order.begin() + static_cast<long>(k), order.end()})));
    area += (prev + cur) / 2 / kU;
    prev = cur;
  }
  return area;
}

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    double less = 0, equal = 0;
    for (double x : v) {
      less += x < v[i];
      equal += x == v[i];
    }
    r[i] = less + (equal + 1) / 2;
  }
  return r;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / static_cast<double>(a.size());
  const double mb = std::accumulate(b.begin(), b.end(), 0.0) / static_cast<double>(b.size());
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) * (a[i] - ma);
    bb += (b[i] - mb) * (b[i] - mb);
  }
  return ab / std::sqrt(aa * bb);
}

// Column sums of a `pizza local` result's matrix over the span units (its non-special inputs).
std::vector<double> unit_totals(const std::string& json) {
  dom::parser parser;
  dom::element doc = parser.parse(json);
  std::vector<size_t> cols;
  size_t c = 0;
  for (dom::element in : dom::array(doc["inputs"])) {
    if (!bool(in["special"]) && !bool(in["generated"])) cols.push_back(c);
    ++c;
  }
  REQUIRE(cols.size() == kU);
  std::vector<double> totals(kU, 0.0);
  for (dom::element row : dom::array(doc["matrix"])) {
    std::vector<double> cells;
    for (dom::element x : dom::array(row)) cells.push_back(double(x));
    for (size_t u = 0; u < kU; ++u) totals[u] += cells[cols[u]];
  }
  return totals;
}

std::vector<size_t> order_of(const std::vector<double>& scores) {
  std::vector<size_t> o(scores.size());
  std::iota(o.begin(), o.end(), size_t{0});
  std::stable_sort(o.begin(), o.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  return o;
}

std::vector<std::string> eval_args(std::vector<std::string> extra) {
  std::vector<std::string> args{"eval", "-m", stories_dir(), "-q", "--threads", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

TEST_CASE("pizza eval: every metric equals a brute-force computation from pizza local runs on the cut prompts") {
  TempDir dir;
  const auto probs = brute_force_probs(dir);
  auto r = run_cli(eval_args({"--prompt", kPrompt, "--spans", kSpansArg, "--target-text", kTarget, "--methods",
                              "saliency,occlusion", "--k", "1,2,9", "--ablations", "24", "--seed", "3", "-f", "json"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  dom::parser parser;
  dom::element doc = parser.parse(r.out);
  dom::element p = dom::array(doc["prompts"]).at(0);

  std::vector<std::vector<bool>> masks;
  for (dom::element m : dom::array(p["lds_masks"])) {
    std::vector<bool> kept;
    for (char ch : std::string_view(m)) kept.push_back(ch == '1');
    masks.push_back(kept);
  }
  REQUIRE(masks.size() == 24);

  size_t idx = 0;
  for (const std::string method : {"saliency", "occlusion"}) {
    INFO(method);
    // The method's attribution from pizza local itself, ranked here.
    auto lr = run_cli({"local", "-m", stories_dir(), "--prompt", kPrompt, "--spans", kSpansArg, "--target-text", kTarget,
                       "--method", method, "-f", "json", "-q", "--threads", "1"});
    REQUIRE(lr.exit_code == 0);
    const auto totals = unit_totals(lr.out);
    const auto order = order_of(totals);
    std::vector<size_t> reversed(order.rbegin(), order.rend());

    dom::element m = dom::array(p["methods"]).at(idx++);
    CHECK(std::string_view(m["method"]) == method);
    std::vector<size_t> ranking;
    for (dom::element x : dom::array(m["ranking"])) ranking.push_back(static_cast<size_t>(int64_t(x)));
    CHECK(ranking == order);

    // Float32 model, two summation orders (one prompt at a time vs a prefix-sharing batch):
    // probabilities agree to ~1e-6 relative; 1e-5 absolute on values of order 0.1..1.
    const double del = deletion_auc(probs, order);
    CHECK(double(m["deletion"]) == Approx(del).margin(1e-5));
    CHECK(double(m["insertion"]) == Approx(insertion_auc(probs, order)).margin(1e-5));
    CHECK(double(m["abpc"]) == Approx(deletion_auc(probs, reversed) - del).margin(1e-5));
    // Top-k: L sums log-probabilities of ~6 tokens: 1e-4 absolute.
    const double L0 = L_of(probs.at(0));
    for (size_t k : {1, 2, 9}) {
      const size_t kk = std::min(k, kU);
      const double expect = L0 - L_of(probs.at(mask_of({order.begin(), order.begin() + static_cast<long>(kk)})));
      CHECK(double(m["topk"][std::to_string(k)]) == Approx(expect).margin(1e-4));
    }
    // LDS over the run's own masks (the design), correlation computed here.
    std::vector<double> lx, ly;
    for (const auto& kept : masks) {
      std::vector<size_t> removed;
      double kept_total = 0;
      for (size_t u = 0; u < kU; ++u) {
        if (kept[u]) kept_total += totals[u];
        else removed.push_back(u);
      }
      lx.push_back(L_of(probs.at(mask_of(removed))));
      ly.push_back(kept_total);
    }
    CHECK(double(m["lds"]) == Approx(pearson(ranks(lx), ranks(ly))).margin(1e-9));
  }
}

TEST_CASE("pizza eval: the same seed gives byte-identical JSON and another seed other masks") {
  const std::vector<std::string> base{"--prompt", "Lily saw a big red ball in the park", "--unit", "word", "-n", "4",
                                      "--methods", "saliency,random", "-f", "json"};
  auto with_seed = [&](const std::string& seed) {
    auto args = base;
    args.insert(args.end(), {"--seed", seed});
    auto r = run_cli(eval_args(args));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return r.out;
  };
  const auto a = with_seed("5");
  CHECK(a == with_seed("5"));
  const auto b = with_seed("6");
  CHECK(a != b);
}

TEST_CASE("pizza eval: --results on a saved pizza local result equals evaluating the method directly") {
  TempDir dir;
  const std::string prompt = "Tom had a little dog. The dog liked to run";
  auto saved = run_cli({"local", "-m", stories_dir(), "--prompt", prompt, "--unit", "word", "-n", "6", "--method",
                        "input-x-gradient", "-o", (dir / "ixg.json").string(), "-q"});
  REQUIRE(saved.exit_code == 0);
  auto from_file = run_cli(eval_args({"--results", (dir / "ixg.json").string(), "-f", "json"}));
  INFO(from_file.err);
  REQUIRE(from_file.exit_code == 0);
  auto direct = run_cli(eval_args({"--prompt", prompt, "--unit", "word", "-n", "6", "--methods",
                                   "input-x-gradient,random", "-f", "json"}));
  REQUIRE(direct.exit_code == 0);
  dom::parser p1, p2;
  dom::element a = dom::array(p1.parse(from_file.out)["prompts"]).at(0);
  dom::element b = dom::array(p2.parse(direct.out)["prompts"]).at(0);
  CHECK(simdjson::minify(a["units"]) == simdjson::minify(b["units"]));
  CHECK(simdjson::minify(a["lds_masks"]) == simdjson::minify(b["lds_masks"]));
  // Both method entries (the saved one and the random baseline) are identical: same scores,
  // same perturbations, same masks, same seeds.
  for (size_t i = 0; i < 2; ++i) {
    dom::element ma = dom::array(a["methods"]).at(i), mb = dom::array(b["methods"]).at(i);
    for (const char* key : {"method", "deletion", "insertion", "abpc", "topk", "lds", "ranking"})
      CHECK(simdjson::minify(ma[key]) == simdjson::minify(mb[key]));
  }
}

TEST_CASE("pizza eval: bad input is a clear error") {
  check_usage_error(run_cli(eval_args({"--prompt", "Once", "--methods", "saliency,bogus"})), "unknown method 'bogus'");
  check_usage_error(run_cli(eval_args({"--prompt", "Once", "--metrics", "deletion,auc"})), "unknown metric 'auc'");
  check_usage_error(run_cli(eval_args({"--prompt", "Once", "--k", "0"})), "--k");
  check_usage_error(run_cli(eval_args({"--prompt", "Once", "--keep-prob", "1"})), "--keep-prob");
  check_usage_error(run_cli(eval_args({})), "--prompt, --prompts or --results");

  // A result whose output ids are not this model's tokens: made with another model.
  TempDir dir;
  auto saved = run_cli({"local", "-m", stories_dir(), "--prompt", "Once upon a time", "-n", "3", "-o",
                        (dir / "s.json").string(), "-q"});
  REQUIRE(saved.exit_code == 0);
  std::string json = slurp(dir / "s.json");
  const auto pos = json.find("\"outputs\"");
  const auto id = json.find("\"id\": ", pos);
  REQUIRE(id != std::string::npos);
  const auto end = json.find(',', id);
  json.replace(id, end - id, "\"id\": 7");
  spit(dir / "other.json", json);
  check_input_error(run_cli(eval_args({"--results", (dir / "other.json").string()})),
                    {"other model", "output token 7"});
}

TEST_CASE("pizza eval: a prompt with one unit is evaluated and a prompt file reports failures per prompt") {
  TempDir dir;
  // One sentence unit: deletion has two points (nothing removed, everything removed).
  auto one = run_cli(eval_args({"--prompt", "Once upon a time", "--unit", "sentence", "-n", "3", "--methods",
                                "occlusion", "--metrics", "deletion,topk", "--k", "1,4", "-f", "json"}));
  INFO(one.err);
  REQUIRE(one.exit_code == 0);
  dom::parser parser;
  dom::element m = dom::array(dom::array(parser.parse(one.out)["prompts"]).at(0)["methods"]).at(0);
  CHECK(dom::array(m["deletion_curve"]["x"]).size() == 2);
  // k = 4 > 1 unit: clipped to removing everything, the same drop as k = 1.
  CHECK(double(m["topk"]["4"]) == double(m["topk"]["1"]));

  // The second prompt is longer than the model's context (512 tokens).
  std::string too_long;
  for (int i = 0; i < 600; ++i) too_long += "word ";
  spit(dir / "p.jsonl", "{\"id\": \"ok\", \"prompt\": \"Lily liked the sun\"}\n"
                        "{\"id\": \"bad\", \"prompt\": \"" + too_long + "\"}\n");
  auto batch = run_cli(eval_args({"--prompts", (dir / "p.jsonl").string(), "--unit", "word", "-n", "3", "--methods",
                                  "saliency,random", "-o", (dir / "e.json").string()}));
  CHECK(batch.exit_code == 1);
  CHECK_THAT(batch.err, Catch::Contains("1 of 2 prompts failed"));
  dom::parser p2;
  dom::element doc = p2.parse(slurp(dir / "e.json"));
  CHECK(std::string_view(dom::array(doc["prompts"]).at(1)["id"]) == "bad");
  CHECK(dom::array(doc["prompts"]).at(1)["error"].is_string());
  CHECK(int64_t(dom::array(doc["aggregate"]).at(0)["metrics"]["deletion"]["n"]) == 1);
}

TEST_CASE("pizza eval: over pizza serve gives the local backend's numbers") {
  PizzaServe server;
  // 5 output tokens: the 6th is a lone " " that the server's tokenizer drops on re-tokenizing
  // prompt + output (see the api tests), so it could not be scored over HTTP.
  const std::vector<std::string> common{"--prompt", "Once upon a time, there was a little girl named Lily.", "--unit", "word",
                                        "-n", "5", "--methods", "occlusion,random", "--seed", "2", "-f", "json"};
  auto api_args = std::vector<std::string>{"eval", "--model", "stories260K", "--base-url", server.base_url(), "--no-cache", "-q"};
  api_args.insert(api_args.end(), common.begin(), common.end());
  const auto api = run_cli(api_args);
  INFO("api: " << api.err);
  REQUIRE(api.exit_code == 0);
  const auto local = run_cli(eval_args(common));
  INFO("local: " << local.err);
  REQUIRE(local.exit_code == 0);
  dom::parser p1, p2;
  dom::element a = dom::array(p1.parse(api.out)["prompts"]).at(0);
  dom::element l = dom::array(p2.parse(local.out)["prompts"]).at(0);
  CHECK(simdjson::minify(a["output_tokens"]) == simdjson::minify(l["output_tokens"]));
  CHECK(simdjson::minify(a["units"]) == simdjson::minify(l["units"]));
  CHECK(simdjson::minify(a["lds_masks"]) == simdjson::minify(l["lds_masks"]));
  CHECK(int64_t(a["scored_prompts"]) == int64_t(l["scored_prompts"]));
  // Two float32 computations of the same log-probabilities (the server one request at a time,
  // the local backend in prefix-sharing batches): ~1e-5 on each log-prob (see the api tests).
  // f averages probabilities: 2e-5; L and top-k sum 5 log-probs: 1e-3; LDS ranks 64 masks, so a
  // near-tie may swap once (a change of ~5e-5): 1e-3.
  for (size_t i = 0; i < 2; ++i) {
    dom::element ma = dom::array(a["methods"]).at(i), ml = dom::array(l["methods"]).at(i);
    INFO(std::string_view(ml["method"]));
    CHECK(simdjson::minify(ma["ranking"]) == simdjson::minify(ml["ranking"]));
    for (const char* key : {"deletion", "insertion", "abpc"}) CHECK(double(ma[key]) == Approx(double(ml[key])).margin(2e-5));
    for (const char* k : {"1", "3", "5"}) CHECK(double(ma["topk"][k]) == Approx(double(ml["topk"][k])).margin(1e-3));
    CHECK(double(ma["lds"]) == Approx(double(ml["lds"])).margin(1e-3));
  }
  // A gradient method cannot run over a server.
  auto grad = std::vector<std::string>{"eval", "--model", "stories260K", "--base-url", server.base_url(), "--prompt", "Once",
                                       "--methods", "saliency"};
  check_usage_error(run_cli(grad), "gradient methods need a local model");
}
