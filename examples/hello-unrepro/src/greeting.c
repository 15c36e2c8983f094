const char *greeting(void)
{
	return "Hello, world!";
}
