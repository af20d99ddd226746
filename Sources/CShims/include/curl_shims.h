#ifndef PGBACKD_CURL_SHIMS_H
#define PGBACKD_CURL_SHIMS_H
#include <curl/curl.h>

/// curl_easy_setopt and curl_easy_getinfo are variadic; Swift calls these typed forms.
CURLcode pgbackd_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode pgbackd_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode pgbackd_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value);
CURLcode pgbackd_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode pgbackd_curl_setopt_write_callback(CURL *handle, size_t (*callback)(char *, size_t, size_t, void *));
CURLcode pgbackd_curl_setopt_read_callback(CURL *handle, size_t (*callback)(char *, size_t, size_t, void *));
CURLcode pgbackd_curl_setopt_header_callback(CURL *handle, size_t (*callback)(char *, size_t, size_t, void *));
CURLcode pgbackd_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);

/// CURLOPT_XFERINFOFUNCTION: called about once a second and on progress; a non-zero return
/// aborts the transfer with CURLE_ABORTED_BY_CALLBACK (used to cancel in-flight transfers).
CURLcode pgbackd_curl_setopt_xferinfo_callback(CURL *handle, int (*callback)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t));
/// curl_global_init(CURL_GLOBAL_ALL): the flag is a macro built from other macros.
CURLcode pgbackd_curl_global_init_all(void);

#endif
