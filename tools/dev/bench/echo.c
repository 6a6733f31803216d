/* SPDX-License-Identifier: Apache-2.0 */
/*
 * echo.c: the ceiling the benchmark measures piivault against.  A bare
 * libmicrohttpd server with piivault's threading model (an internal
 * polling thread and a pool of 8 workers): it reads a JSON body, parses it
 * with jansson as piivault does, and answers a fixed ~100-byte JSON.
 * Whatever piivault adds beyond this is piivault's own cost.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#define BODY_MAX	(1u << 20)

static const char answer[] = "{\"id\":\"rec_AAAAAAAAAAAAAAAAAAAAAA\","
    "\"tokens\":{\"email\":\"tok_AAAAAAAAAAAAAAAAAAAAAA\"}}\n";

struct req {
	char	*body;
	size_t	 len;
};

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct req *r = *con_cls;
	struct MHD_Response *resp;
	enum MHD_Result ok;
	json_error_t err;
	json_t *j;
	char *nb;

	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (r->len + *upload_size > BODY_MAX ||
		    (nb = realloc(r->body, r->len + *upload_size)) == NULL)
			return MHD_NO;
		r->body = nb;
		memcpy(r->body + r->len, upload, *upload_size);
		r->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if ((j = json_loadb(r->body ? r->body : "{}", r->body ? r->len : 2, 0,
	    &err)) != NULL)
		json_decref(j);
	resp = MHD_create_response_from_buffer(sizeof(answer) - 1,
	    (void *)answer, MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "application/json") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ok = MHD_queue_response(c, j != NULL ? 200 : 400, resp);
	MHD_destroy_response(resp);
	return ok;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r != NULL) {
		free(r->body);
		free(r);
		*con_cls = NULL;
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	sigset_t sigs;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)(argc > 1 ? strtoul(argv[1], NULL, 10) :
	    0));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (sigemptyset(&sigs) != 0 || sigaddset(&sigs, SIGINT) != 0 ||
	    sigaddset(&sigs, SIGTERM) != 0 ||
	    pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0)
		return 1;
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
	    MHD_USE_AUTO, 0, NULL, NULL, on_request, NULL,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_THREAD_POOL_SIZE, 8u,
	    MHD_OPTION_CONNECTION_LIMIT, 256u,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_END);
	if (d == NULL ||
	    (info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)) == NULL)
		return 1;
	(void)printf("echo: listening on http://127.0.0.1:%u\n", info->port);
	(void)fflush(stdout);
	(void)sigwait(&sigs, &sig);
	MHD_stop_daemon(d);
	return 0;
}
