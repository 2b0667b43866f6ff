#include "serve/batch.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "model/generate.h"
#include "util/error.h"

namespace pizza::serve {

namespace {

// The chosen token's log-prob and the k best alternatives, from one row of log-probs [V].
TokenLogprob logprob_entry(const torch::Tensor& row_logp, int64_t id, int k) {
  TokenLogprob e;
  e.id = id;
  e.logprob = row_logp[id].item<double>();
  k = static_cast<int>(std::min<int64_t>(k, row_logp.size(0)));
  if (k > 0) {
    auto [values, indices] = row_logp.topk(k);
    auto va = values.accessor<float, 1>();
    auto ia = indices.accessor<int64_t, 1>();
    for (int j = 0; j < k; ++j) e.top.emplace_back(ia[j], va[j]);
  }
  return e;
}

// Samples from softmax(logits / temperature). The uniform draw is built from the raw 64-bit
// engine output (not std::uniform_real_distribution, whose algorithm is implementation-defined)
// so a seed gives the same tokens on every platform.
int64_t sample(const torch::Tensor& row_logits, double temperature, std::mt19937_64& rng) {
  auto x = row_logits.accessor<double, 1>();
  const int64_t V = row_logits.size(0);
  double max = -INFINITY;
  for (int64_t i = 0; i < V; ++i) max = std::max(max, x[i]);
  std::vector<double> p(static_cast<size_t>(V));
  double total = 0;
  for (int64_t i = 0; i < V; ++i) total += p[static_cast<size_t>(i)] = std::exp((x[i] - max) / temperature);
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  double target = u * total, acc = 0;
  int64_t last_positive = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (p[static_cast<size_t>(i)] <= 0) continue;
    acc += p[static_cast<size_t>(i)];
    last_positive = i;
    if (acc > target) return i;
  }
  return last_positive;  // rounding left target just above the accumulated sum
}

// Earliest occurrence of any stop string in text.
std::optional<size_t> find_stop(const std::string& text, const std::vector<std::string>& stops) {
  std::optional<size_t> best;
  for (const auto& s : stops) {
    auto pos = text.find(s);
    if (pos != std::string::npos && (!best || pos < *best)) best = pos;
  }
  return best;
}

// Teacher-forced log-probs of one row's prompt from the prefill logits of that row [T,V]
// (left-padded: the prompt occupies the last prompt.size() positions).
std::vector<std::optional<TokenLogprob>> prompt_logprobs(const torch::Tensor& row_logits, const GenerationRequest& r) {
  const auto T = row_logits.size(0);
  const auto len = static_cast<int64_t>(r.prompt.size());
  std::vector<std::optional<TokenLogprob>> out(r.prompt.size());
  if (len < 2) return out;
  // Position t predicts token t+1.
  auto logp = torch::log_softmax(row_logits.slice(0, T - len, T - 1).to(torch::kFloat), -1).cpu();
  for (int64_t t = 1; t < len; ++t)
    out[static_cast<size_t>(t)] = logprob_entry(logp[t - 1], r.prompt[static_cast<size_t>(t)], r.top_logprobs);
  return out;
}

}  // namespace

std::vector<GenerationResult> run_batch(const LanguageModel& lm, std::span<const GenerationRequest> requests,
                                        std::stop_token cancel) {
  torch::NoGradGuard no_grad;
  const auto& model = lm.model();
  const auto& tok = lm.tokenizer();
  const size_t B = requests.size();
  std::vector<GenerationResult> out(B);
  if (B == 0) return out;

  std::vector<std::vector<int64_t>> prompts;
  int64_t steps = 0;
  bool need_prompt_logprobs = false, need_logprobs = false;
  for (const auto& r : requests) {
    if (r.prompt.empty()) throw InputError("cannot generate from an empty prompt (no tokens, not even BOS)");
    prompts.push_back(r.prompt);
    steps = std::max(steps, r.max_tokens);
    need_prompt_logprobs = need_prompt_logprobs || r.prompt_logprobs;
    need_logprobs = need_logprobs || r.logprobs;
  }
  if (steps == 0 && !need_prompt_logprobs) return out;  // nothing to compute: empty texts, "length"

  const auto dev = model.device();
  auto [ids, mask] = left_pad(prompts);
  KVCache cache = model.new_cache();
  ForwardOptions fo;
  fo.cache = &cache;
  fo.attention_mask = mask.to(dev);
  // Prompt log-probs need every position's logits; plain generation only the last one.
  fo.last_only = !need_prompt_logprobs;
  auto logits = model.forward(model.embed(ids.to(dev)), fo);
  if (need_prompt_logprobs) {
    for (size_t b = 0; b < B; ++b)
      if (requests[b].prompt_logprobs) out[b].prompt_logprobs = prompt_logprobs(logits[static_cast<int64_t>(b)], requests[b]);
    logits = logits.slice(1, logits.size(1) - 1);
  }
  fo.last_only = true;
  fo.attention_mask = torch::ones({static_cast<int64_t>(B), 1}, torch::TensorOptions().dtype(torch::kBool).device(dev));

  std::vector<std::mt19937_64> rngs;
  std::vector<bool> done(B), cut(B);  // cut: text already ends before a matched stop string
  bool any_sampled = false;
  for (size_t b = 0; b < B; ++b) {
    rngs.emplace_back(requests[b].seed);
    done[b] = requests[b].max_tokens == 0;
    any_sampled = any_sampled || (requests[b].temperature > 0 && !done[b]);
  }
  std::vector<int64_t> next(B, 0);
  for (int64_t step = 0; step < steps; ++step) {
    // Between tokens, the one point where a batch can stop without leaving the model mid-call.
    if (cancel.stop_requested())
      throw Unavailable("server_shutting_down",
                        "the server is shutting down: the generation was cancelled after " + std::to_string(step) + " tokens");
    if (step > 0) logits = model.forward(model.embed(torch::tensor(next, torch::kLong).view({-1, 1}).to(dev)), fo);
    auto last = logits.squeeze(1);                      // [B,V]
    auto greedy = last.argmax(-1).to(torch::kCPU);      // as greedy_generate picks
    auto ga = greedy.accessor<int64_t, 1>();
    torch::Tensor logp, scaled;
    if (need_logprobs) logp = torch::log_softmax(last.to(torch::kFloat), -1).cpu();
    if (any_sampled) scaled = last.to(torch::kDouble).cpu();
    bool all_done = true;
    for (size_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const auto& r = requests[b];
      auto& res = out[b];
      const auto row = static_cast<int64_t>(b);
      const int64_t t = r.temperature > 0 ? sample(scaled[row], r.temperature, rngs[b]) : ga[row];
      res.tokens.push_back(t);
      next[b] = t;
      if (r.logprobs) res.logprobs.push_back(logprob_entry(logp[row], t, r.top_logprobs));
      if (std::find(r.stop_ids.begin(), r.stop_ids.end(), t) != r.stop_ids.end()) {
        done[b] = true;
        res.finish = FinishReason::stop;
      } else if (!r.stop.empty()) {
        res.text = decode_continuation(tok, r.prompt, res.tokens);
        if (auto pos = find_stop(res.text, r.stop)) {
          res.text.resize(*pos);
          done[b] = cut[b] = true;
          res.finish = FinishReason::stop;
        }
      }
      if (!done[b] && static_cast<int64_t>(res.tokens.size()) >= r.max_tokens) done[b] = true;
      all_done = all_done && done[b];
    }
    if (all_done) break;
  }
  for (size_t b = 0; b < B; ++b)
    if (!cut[b]) out[b].text = decode_continuation(tok, requests[b].prompt, out[b].tokens);
  return out;
}

BatchQueue::BatchQueue(const LanguageModel& lm, int max_batch, int max_queue)
    : lm_(lm),
      max_batch_(static_cast<size_t>(std::max(1, max_batch))),
      max_queue_(static_cast<size_t>(std::max(1, max_queue))),
      worker_([this] { work(); }) {}

BatchQueue::~BatchQueue() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

std::future<GenerationResult> BatchQueue::submit(GenerationRequest request) {
  Pending p{std::move(request), {}};
  auto fut = p.promise.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || cancel_.stop_requested()) throw Unavailable("server_shutting_down", "the server is shutting down");
    if (queue_.size() >= max_queue_)
      throw Unavailable("server_overloaded", "the server is busy: its queue is full (" + std::to_string(queue_.size()) +
                                                 " requests wait, --max-queue); retry later");
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
  return fut;
}

void BatchQueue::cancel() {
  std::deque<Pending> dropped;
  {
    std::lock_guard lock(mutex_);
    cancel_.request_stop();
    dropped.swap(queue_);
  }
  const auto why = std::make_exception_ptr(
      Unavailable("server_shutting_down", "the server is shutting down: the request was cancelled before it started"));
  for (auto& p : dropped) p.promise.set_exception(why);
}

void BatchQueue::work() {
  for (;;) {
    std::vector<Pending> batch;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has been answered
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    largest_batch_ = std::max(largest_batch_.load(), batch.size());
    std::vector<GenerationRequest> requests;
    for (auto& p : batch) requests.push_back(std::move(p.request));
    try {
      auto results = run_batch(lm_, requests, cancel_.get_token());
      for (size_t i = 0; i < batch.size(); ++i) batch[i].promise.set_value(std::move(results[i]));
    } catch (...) {
      for (auto& p : batch) p.promise.set_exception(std::current_exception());
    }
  }
}

}  // namespace pizza::serve
