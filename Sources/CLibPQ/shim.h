// libpq (libpq-dev): the PostgreSQL client for registry.database_url.
#include <libpq-fe.h>
