#include "serve/batch.h"

#include <algorithm>
#include <cmath>
#include <numeric>
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

// Samples from softmax(logits / temperature), restricted to the smallest set of most likely
// tokens whose probability reaches top_p (nucleus sampling; ties broken by lower id, so the set
// is the same everywhere). The uniform draw is built from the raw 64-bit engine output (not
// std::uniform_real_distribution, whose algorithm is implementation-defined) so a seed gives the
// same tokens on every platform.
int64_t sample(const torch::Tensor& row_logits, double temperature, double top_p, std::mt19937_64& rng) {
  auto x = row_logits.accessor<double, 1>();
  const int64_t V = row_logits.size(0);
  double max = -INFINITY;
  for (int64_t i = 0; i < V; ++i) max = std::max(max, x[i]);
  std::vector<double> p(static_cast<size_t>(V));
  double total = 0;
  for (int64_t i = 0; i < V; ++i) total += p[static_cast<size_t>(i)] = std::exp((x[i] - max) / temperature);
  std::vector<int64_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (top_p < 1.0) {
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return p[static_cast<size_t>(a)] > p[static_cast<size_t>(b)]; });
    double kept = 0;
    size_t n = 0;
    while (n < order.size() && (n == 0 || kept < top_p * total)) kept += p[static_cast<size_t>(order[n++])];
    order.resize(n);  // at least the most likely token
    total = kept;
  }
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  double target = u * total, acc = 0;
  int64_t last_positive = order.front();
  for (auto i : order) {
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

  // Per row: done (no more tokens), cut (text already ends before a matched stop string),
  // finalized (text set, last delta delivered); streaming: the text delivered so far and the
  // log-probs still waiting for their text.
  std::vector<bool> done(B), cut(B), finalized(B);
  std::vector<std::string> sent(B);
  std::vector<std::vector<TokenLogprob>> unsent(B);
  auto deliver = [&](size_t b, StreamDelta d) {
    d.logprobs = std::move(unsent[b]);
    unsent[b].clear();
    d.completion_tokens = static_cast<int64_t>(out[b].tokens.size());
    sent[b] += d.text;
    requests[b].on_delta(std::move(d));
  };
  // Streams what of `text` has become final. Only text extending what was sent goes out: a
  // decoder that rewrote earlier text (not prefix-stable) has its stream wait for the end.
  auto stream_text = [&](size_t b, const std::string& text) {
    if (!requests[b].on_delta || !text.starts_with(sent[b])) return;
    const size_t n = final_text_length(text, requests[b].stop);
    if (n <= sent[b].size()) return;
    StreamDelta d;
    d.text = text.substr(sent[b].size(), n - sent[b].size());
    deliver(b, std::move(d));
  };
  auto finalize = [&](size_t b) {
    finalized[b] = true;
    auto& res = out[b];
    if (!cut[b]) res.text = decode_continuation(tok, requests[b].prompt, res.tokens);
    if (!requests[b].on_delta || res.finish == FinishReason::cancelled) return;
    StreamDelta d;
    if (res.text.starts_with(sent[b])) d.text = res.text.substr(sent[b].size());
    d.finish = res.finish;
    deliver(b, std::move(d));
  };
  auto finalize_rest = [&] {
    for (size_t b = 0; b < B; ++b)
      if (!finalized[b]) finalize(b);
  };
  if (steps == 0 && !need_prompt_logprobs) {  // nothing to compute: empty texts, "length"
    finalize_rest();
    return out;
  }

  const auto dev = model.device();
  auto [ids, mask] = left_pad(prompts);
  KVCache cache = model.new_cache(ids.size(0), ids.size(1) + steps);  // written in place
  ForwardOptions fo;
  fo.cache = &cache;
  fo.attention_mask = mask.to(dev);
  // Prompt log-probs need every position's logits; plain generation only the last one.
  fo.last_only = !need_prompt_logprobs;
  auto logits = model.forward(model.embed(ids.to(dev)), fo);
  if (need_prompt_logprobs) {
    for (size_t b = 0; b < B; ++b) {
      if (!requests[b].prompt_logprobs) continue;
      out[b].prompt_logprobs = prompt_logprobs(logits[static_cast<int64_t>(b)], requests[b]);
      if (requests[b].on_delta) {
        StreamDelta d;
        d.prompt_logprobs = out[b].prompt_logprobs;
        deliver(b, std::move(d));
      }
    }
    logits = logits.slice(1, logits.size(1) - 1);
  }
  fo.last_only = true;
  fo.attention_mask = torch::ones({static_cast<int64_t>(B), 1}, torch::TensorOptions().dtype(torch::kBool).device(dev));

  std::vector<std::mt19937_64> rngs;
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
    bool all_done = true;
    for (size_t b = 0; b < B; ++b) {
      if (!done[b] && requests[b].cancel.stop_requested()) {
        done[b] = finalized[b] = true;  // nobody waits for its text
        out[b].finish = FinishReason::cancelled;
      }
      all_done = all_done && done[b];
    }
    if (all_done) break;
    if (step > 0) logits = model.forward(model.embed(torch::tensor(next, torch::kLong).view({-1, 1}).to(dev)), fo);
    auto last = logits.squeeze(1);                      // [B,V]
    auto greedy = last.argmax(-1).to(torch::kCPU);      // as greedy_generate picks
    auto ga = greedy.accessor<int64_t, 1>();
    torch::Tensor logp, scaled;
    if (need_logprobs) logp = torch::log_softmax(last.to(torch::kFloat), -1).cpu();
    if (any_sampled) scaled = last.to(torch::kDouble).cpu();
    for (size_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const auto& r = requests[b];
      auto& res = out[b];
      const auto row = static_cast<int64_t>(b);
      const int64_t t = r.temperature > 0 ? sample(scaled[row], r.temperature, r.top_p, rngs[b]) : ga[row];
      res.tokens.push_back(t);
      next[b] = t;
      const bool stop_token = std::find(r.stop_ids.begin(), r.stop_ids.end(), t) != r.stop_ids.end();
      if (r.logprobs) {
        res.logprobs.push_back(logprob_entry(logp[row], t, r.top_logprobs));
        if (r.on_delta && !stop_token) unsent[b].push_back(res.logprobs.back());
      }
      if (stop_token) {
        done[b] = true;
        res.finish = FinishReason::stop;
      } else if (!r.stop.empty() || r.on_delta) {
        auto text = decode_continuation(tok, r.prompt, res.tokens);
        if (auto pos = find_stop(text, r.stop)) {
          res.text = text.substr(0, *pos);
          done[b] = cut[b] = true;
          res.finish = FinishReason::stop;
        } else {
          stream_text(b, text);
        }
      }
      if (!done[b] && static_cast<int64_t>(res.tokens.size()) >= r.max_tokens) done[b] = true;
      // A row that ends is answered now, not when the batch's longest row ends.
      if (done[b]) finalize(b);
    }
  }
  finalize_rest();
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
  for (auto& p : dropped) fail(p.request, p.promise, why);
}

void BatchQueue::fail(GenerationRequest& request, std::promise<GenerationResult>& promise, std::exception_ptr error) {
  if (request.on_delta) {
    StreamDelta d;
    d.error = error;
    request.on_delta(std::move(d));
  }
  promise.set_exception(error);
}

void BatchQueue::work() {
  for (;;) {
    std::vector<Pending> batch;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has been answered
      while (!queue_.empty() && batch.size() < max_batch_) {
        if (queue_.front().request.cancel.stop_requested()) {  // its client left while it waited
          GenerationResult gone;
          gone.finish = FinishReason::cancelled;
          queue_.front().promise.set_value(std::move(gone));
          ++cancelled_;
        } else {
          batch.push_back(std::move(queue_.front()));
        }
        queue_.pop_front();
      }
    }
    if (batch.empty()) continue;
    largest_batch_ = std::max(largest_batch_.load(), batch.size());
    std::vector<GenerationRequest> requests;
    for (auto& p : batch) requests.push_back(std::move(p.request));
    try {
      auto results = run_batch(lm_, requests, cancel_.get_token());
      for (size_t i = 0; i < batch.size(); ++i) {
        if (results[i].finish == FinishReason::cancelled) ++cancelled_;
        batch[i].promise.set_value(std::move(results[i]));
      }
    } catch (...) {
      for (size_t i = 0; i < batch.size(); ++i) fail(requests[i], batch[i].promise, std::current_exception());
    }
  }
}

}  // namespace pizza::serve
