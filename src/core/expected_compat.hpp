#pragma once

// std::expected where the standard library hides it from the compiler. GCC 12's libstdc++ offers <expected> only to
// compilers with C++20 conditionally trivial special members (P0848), which clang gained in version 16; the fuzz
// targets (docs/fuzzing.md) are built with Debian 12's clang 14 for libFuzzer. The product is built with GCC 12,
// which has __cpp_lib_expected, so none of this is compiled there. It is the subset Atrium uses, on std::variant.

#include <expected>

#if !defined(__cpp_lib_expected)

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace std {

template <class E>
class unexpected {
 public:
  template <class Err = E>
  requires(!is_same_v<remove_cvref_t<Err>, unexpected> &&
           is_constructible_v<E, Err>) constexpr explicit unexpected(Err&& error)
      : error_(std::forward<Err>(error)) {}

  constexpr const E& error() const& noexcept { return error_; }
  constexpr E& error() & noexcept { return error_; }
  constexpr E&& error() && noexcept { return std::move(error_); }

 private:
  E error_;
};

template <class E>
unexpected(E) -> unexpected<E>;

class bad_expected_access_base : public exception {
 public:
  const char* what() const noexcept override { return "bad access to std::expected without expected value"; }
};

template <class E>
class bad_expected_access : public bad_expected_access_base {
 public:
  explicit bad_expected_access(E error) : error_(std::move(error)) {}
  const E& error() const& noexcept { return error_; }

 private:
  E error_;
};

namespace expected_compat {
template <class U>
inline constexpr bool is_unexpected = false;
template <class G>
inline constexpr bool is_unexpected<unexpected<G>> = true;
}  // namespace expected_compat

template <class T, class E>
class expected {
 public:
  using value_type = T;
  using error_type = E;

  constexpr expected() requires is_default_constructible_v<T> : state_(in_place_index<0>) {}
  template <class U = T>
  requires(!is_same_v<remove_cvref_t<U>, expected> && !is_same_v<remove_cvref_t<U>, in_place_t> &&
           !expected_compat::is_unexpected<remove_cvref_t<U>> && is_constructible_v<T, U>) constexpr expected(U&& value)
      : state_(in_place_index<0>, std::forward<U>(value)) {}
  template <class... Args>
  constexpr explicit expected(in_place_t, Args&&... args) : state_(in_place_index<0>, std::forward<Args>(args)...) {}
  template <class G>
  constexpr expected(const unexpected<G>& failure) : state_(in_place_index<1>, failure.error()) {}
  template <class G>
  constexpr expected(unexpected<G>&& failure) : state_(in_place_index<1>, std::move(failure).error()) {}

  constexpr bool has_value() const noexcept { return state_.index() == 0; }
  constexpr explicit operator bool() const noexcept { return has_value(); }

  constexpr T& operator*() & noexcept { return *std::get_if<0>(&state_); }
  constexpr const T& operator*() const& noexcept { return *std::get_if<0>(&state_); }
  constexpr T&& operator*() && noexcept { return std::move(*std::get_if<0>(&state_)); }
  constexpr T* operator->() noexcept { return std::get_if<0>(&state_); }
  constexpr const T* operator->() const noexcept { return std::get_if<0>(&state_); }

  constexpr T& value() & { return check(), *std::get_if<0>(&state_); }
  constexpr const T& value() const& { return check(), *std::get_if<0>(&state_); }
  constexpr T&& value() && { return check(), std::move(*std::get_if<0>(&state_)); }
  template <class U>
  constexpr T value_or(U&& fallback) const& {
    return has_value() ? **this : static_cast<T>(std::forward<U>(fallback));
  }

  constexpr E& error() & noexcept { return *std::get_if<1>(&state_); }
  constexpr const E& error() const& noexcept { return *std::get_if<1>(&state_); }
  constexpr E&& error() && noexcept { return std::move(*std::get_if<1>(&state_)); }

 private:
  constexpr void check() const {
    if (!has_value()) throw bad_expected_access<E>(*std::get_if<1>(&state_));
  }

  variant<T, E> state_;
};

template <class E>
class expected<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  constexpr expected() noexcept = default;
  template <class G>
  constexpr expected(const unexpected<G>& failure) : error_(in_place, failure.error()) {}
  template <class G>
  constexpr expected(unexpected<G>&& failure) : error_(in_place, std::move(failure).error()) {}

  constexpr bool has_value() const noexcept { return !error_.has_value(); }
  constexpr explicit operator bool() const noexcept { return has_value(); }
  constexpr void operator*() const noexcept {}
  constexpr void value() const {
    if (error_) throw bad_expected_access<E>(*error_);
  }

  constexpr E& error() & noexcept { return *error_; }
  constexpr const E& error() const& noexcept { return *error_; }
  constexpr E&& error() && noexcept { return std::move(*error_); }

 private:
  optional<E> error_;
};

}  // namespace std

#endif
